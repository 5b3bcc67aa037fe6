use unicode_normalization::is_nfc;

use super::*;

#[track_caller]
fn check(input: &str, expected: &str) {
    let got = sanitize_component(input);
    assert_eq!(got, expected, "sanitize_component({input:?})");
    assert_eq!(sanitize_component(&got), got, "not idempotent on {input:?}");
}

#[test]
fn plain_names_are_unchanged() {
    check("rapport.pdf", "rapport.pdf");
    check(
        "Pièce d'identité (recto).jpg",
        "Pièce d'identité (recto).jpg",
    );
    check(".htaccess", ".htaccess");
    check("  leading spaces kept", "  leading spaces kept");
}

#[test]
fn separators_become_underscores() {
    check("a/b\\c", "a_b_c");
    check("../../x.pdf", ".._.._x.pdf");
    check("/etc/passwd", "_etc_passwd");
}

#[test]
fn dot_names_fall_back() {
    check(".", FALLBACK_NAME);
    check("..", FALLBACK_NAME);
    check("...", FALLBACK_NAME);
    check("", FALLBACK_NAME);
    check(" . . ", FALLBACK_NAME);
}

#[test]
fn control_characters_become_underscores() {
    check("a\0b.pdf", "a_b.pdf");
    check(
        "tab\there\nnew\rline\u{7f}del\u{85}c1",
        "tab_here_new_line_del_c1",
    );
}

#[test]
fn windows_forbidden_and_bidi_characters_become_underscores() {
    check("a<b>c:d\"e|f?g*h", "a_b_c_d_e_f_g_h");
    check("cod\u{202E}fdp.exe", "cod_fdp.exe");
    check("x\u{2066}y", "x_y");
}

#[test]
fn trailing_dots_and_spaces_are_removed() {
    check("name. . ", "name");
    check("file.pdf.", "file.pdf");
    check("dir ", "dir");
}

#[test]
fn windows_reserved_names_get_a_prefix() {
    check("CON", "_CON");
    check("con", "_con");
    check("CON.txt", "_CON.txt");
    check("nul.tar.gz", "_nul.tar.gz");
    check("PRN", "_PRN");
    check("Aux", "_Aux");
    check("COM1", "_COM1");
    check("com9.log", "_com9.log");
    check("LPT3", "_LPT3");
    check("COM¹", "_COM¹");
    check("CON .txt", "_CON .txt");
    check("CONIN$", "_CONIN$");
    check("CON.", "_CON");
    // Not reserved.
    check("CONSOLE", "CONSOLE");
    check("COM10", "COM10");
    check("LPT", "LPT");
    check("xCON", "xCON");
}

#[test]
fn unicode_is_normalized_to_nfc() {
    let nfd = "e\u{301}te\u{301}.pdf";
    check(nfd, "\u{e9}t\u{e9}.pdf");
}

#[test]
fn long_names_are_cut_keeping_the_extension() {
    let name = format!("{}.pdf", "a".repeat(300));
    let expected = format!("{}.pdf", "a".repeat(251));
    check(&name, &expected);

    // Cut on a char boundary: 'é' is 2 bytes, 251 is odd.
    let name = format!("{}.pdf", "é".repeat(200));
    let expected = format!("{}.pdf", "é".repeat(125));
    check(&name, &expected);

    // No extension: the end is cut.
    check(&"b".repeat(300), &"b".repeat(255));

    // An "extension" over 32 bytes is not one.
    let long_ext = format!("x.{}", "e".repeat(300));
    check(&long_ext, &format!("x.{}", "e".repeat(253)));

    // What the cut exposes at the end is trimmed too.
    let name = format!("{}{}{}", "c".repeat(250), "     ", "y".repeat(10));
    check(&name, &"c".repeat(250));
}

#[test]
fn reserved_prefix_stays_within_the_limit() {
    let name = format!("CON.{}", "z".repeat(251));
    let got = sanitize_component(&name);
    assert!(got.len() <= MAX_COMPONENT_BYTES);
    assert!(got.starts_with("_CON."));
    check(&name, &got);
}

#[test]
fn split_ext_cases() {
    assert_eq!(split_ext("a.pdf"), ("a", ".pdf"));
    assert_eq!(split_ext("archive.tar.gz"), ("archive.tar", ".gz"));
    assert_eq!(split_ext("README"), ("README", ""));
    assert_eq!(split_ext(".htaccess"), (".htaccess", ""));
    assert_eq!(split_ext("trailing."), ("trailing.", ""));
}

#[test]
fn suffixes_keep_the_extension_and_the_limit() {
    assert_eq!(suffix_component("a.pdf", 2, true), "a (2).pdf");
    assert_eq!(suffix_component("README", 3, true), "README (3)");
    assert_eq!(suffix_component("v1.2", 2, false), "v1.2 (2)");
    let long = format!("{}.pdf", "a".repeat(251));
    let got = suffix_component(&long, 12, true);
    assert_eq!(got.len(), MAX_COMPONENT_BYTES);
    assert!(got.ends_with("a (12).pdf"));
    assert_eq!(sanitize_component(&got), got);
}

#[test]
fn suffix_numbers_are_recognized() {
    assert_eq!(suffix_number("a (2).pdf", true), Some(2));
    assert_eq!(suffix_number("a (17)", true), Some(17));
    assert_eq!(suffix_number("dir (3)", false), Some(3));
    assert_eq!(suffix_number("a (x).pdf", true), None);
    assert_eq!(suffix_number("a ().pdf", true), None);
    assert_eq!(suffix_number("a.pdf", true), None);
}

/// A deterministic generator (xorshift) of hostile names from dangerous pieces.
fn hostile_names(count: usize) -> Vec<String> {
    const PIECES: &[&str] = &[
        "..", ".", "/", "\\", "\0", "\u{1}", "\u{1f}", "\u{7f}", "\u{85}", " ", "CON", "nul",
        "COM1", "lpt9", "e\u{301}", "\u{e9}", "a", "Z", ".pdf", ".tar.gz", "é", "日本", "🎉",
        "\u{202E}", ":", "*", "?", "\"", "<", ">", "|", "\t", "\n", ".dsfiles", "(2)", "~", "$",
    ];
    let mut next = crate::random::xorshift(0x9E37_79B9_7F4A_7C15);
    (0..count)
        .map(|_| {
            let mut s = crate::random::joined(PIECES, 40, &mut next);
            if next().is_multiple_of(8) {
                s.push_str(&"x".repeat((next() % 400) as usize));
            }
            s
        })
        .collect()
}

#[test]
fn property_sanitized_components_are_safe() {
    for input in hostile_names(5_000) {
        let got = sanitize_component(&input);
        let ctx = format!("input {input:?} gave {got:?}");
        assert!(!got.is_empty(), "{ctx}");
        assert!(got.len() <= MAX_COMPONENT_BYTES, "{ctx}");
        assert!(got != "." && got != "..", "{ctx}");
        assert!(!got.contains(['/', '\\', '\0']), "{ctx}");
        assert!(!got.chars().any(char::is_control), "{ctx}");
        assert!(!got.ends_with(['.', ' ']), "{ctx}");
        assert!(!is_reserved(&got), "{ctx}");
        assert!(is_nfc(&got), "{ctx}");
        assert_eq!(sanitize_component(&got), got, "not idempotent: {ctx}");
    }
}
