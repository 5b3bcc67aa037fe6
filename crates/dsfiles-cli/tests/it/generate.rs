//! `dsfiles completions` and `dsfiles man`: documents generated from the clap definition, so
//! they name every subcommand and flag the binary has.

use std::path::Path;

use crate::{dsfiles, stderr};

/// The subcommands `dsfiles --help` lists (its `Commands:` section), `help` aside.
fn subcommands() -> Vec<String> {
    let output = dsfiles().arg("--help").output().unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    let section = help
        .split("Commands:\n")
        .nth(1)
        .expect("a Commands section");
    let names: Vec<String> = section
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .filter(|line| line.starts_with("  ") && !line.starts_with("   "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect();
    assert!(names.len() >= 8, "{names:?}");
    names
}

/// stdout of a successful run with nothing on stderr.
fn stdout_of(args: &[&str]) -> String {
    let output = dsfiles().args(args).output().unwrap();
    assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    assert!(output.stderr.is_empty(), "{args:?}: {}", stderr(&output));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn bash_completion_names_every_subcommand_and_their_flags() {
    let script = stdout_of(&["completions", "bash"]);
    assert!(script.contains("complete -F _dsfiles"), "{script}");
    for name in subcommands() {
        assert!(
            script.contains(&format!("dsfiles,{name})")),
            "`{name}` missing"
        );
    }
    for flag in ["--demarche", "--dest", "--since", "--state-dir", "--out"] {
        assert!(script.contains(flag), "`{flag}` missing");
    }
}

#[test]
fn every_shell_gets_a_script_naming_the_subcommands() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = stdout_of(&["completions", shell]);
        for name in subcommands() {
            assert!(script.contains(&name), "{shell}: `{name}` missing");
        }
        assert!(script.contains("demarche"), "{shell}: `--demarche` missing");
    }
}

#[test]
fn an_unknown_shell_is_a_usage_error_naming_the_choices() {
    let output = dsfiles().args(["completions", "tcsh"]).output().unwrap();
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(output.stdout.is_empty());
    for expected in ["tcsh", "bash", "zsh", "fish", "elvish", "powershell"] {
        assert!(err.contains(expected), "`{expected}` in: {err}");
    }
}

/// A man page: roff requests up to its `.TH` title (clap_mangen opens with the `\*(Aq`
/// string definition), the usual sections, and, where groff is installed, no groff warning.
#[track_caller]
fn assert_man_page(page: &str, name: &str) {
    let title = page
        .lines()
        .find(|line| !line.starts_with(".ie ") && !line.starts_with(".el "))
        .unwrap_or_default();
    assert!(
        title.starts_with(&format!(".TH {name} 1 ")),
        "{name}: {title}"
    );
    for section in [".SH NAME", ".SH SYNOPSIS", ".SH OPTIONS"] {
        assert!(page.contains(section), "{name}: no `{section}`");
    }
    assert_eq!(groff_warnings(page), "", "{name}");
}

/// What groff says about `page`, every warning on but line breaking (`cannot adjust line` is
/// typography, not a mistake), UTF-8 input through preconv (`-k`) as `man` does; nothing when
/// groff is not installed.
fn groff_warnings(page: &str) -> String {
    let Ok(mut groff) = std::process::Command::new("groff")
        .args(["-k", "-man", "-ww", "-Wbreak", "-z", "-Tutf8"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        return String::new();
    };
    std::io::Write::write_all(&mut groff.stdin.take().unwrap(), page.as_bytes()).unwrap();
    let output = groff.wait_with_output().unwrap();
    assert!(output.status.success(), "groff: {output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn man_prints_the_top_level_page() {
    let page = stdout_of(&["man"]);
    assert_man_page(&page, "dsfiles");
    assert!(page.contains(".SH SUBCOMMANDS"), "{page}");
    for name in subcommands() {
        assert!(
            page.contains(&format!("dsfiles\\-{name}(1)")),
            "`{name}` missing"
        );
    }
    assert!(!page.contains("dsfiles\\-help(1)"), "{page}");
}

#[test]
fn man_out_writes_one_page_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man/man1");
    assert_eq!(stdout_of(&["man", "--out", out.to_str().unwrap()]), "");
    let mut expected: Vec<String> = subcommands()
        .iter()
        .map(|name| format!("dsfiles-{name}.1"))
        .collect();
    expected.push("dsfiles.1".to_owned());
    expected.sort();
    assert_eq!(files_in(&out), expected);
    for file in &expected {
        let page = std::fs::read_to_string(out.join(file)).unwrap();
        assert_man_page(&page, file.trim_end_matches(".1"));
    }
    let sync = std::fs::read_to_string(out.join("dsfiles-sync.1")).unwrap();
    assert!(sync.contains("\\-\\-demarche"), "{sync}");
    let top = std::fs::read_to_string(out.join("dsfiles.1")).unwrap();
    assert_eq!(top, stdout_of(&["man"]));
}

#[test]
fn man_out_onto_a_file_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let output = dsfiles()
        .args(["man", "--out", file.to_str().unwrap()])
        .output()
        .unwrap();
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("`{}`", file.display())), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
