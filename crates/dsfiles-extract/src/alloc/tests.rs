use super::*;

fn key(s: &str) -> RelKey {
    RelKey::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `existing` (file id, key) through `insert_existing`, then each `(file id, desired)`
/// through `allocate`, and compares the allocated keys, one `file id -> key` line each.
#[track_caller]
fn check(existing: &[(&str, &str)], requests: &[(&str, &str)], expected: &str) {
    let mut alloc = KeyAllocator::new();
    for (id, k) in existing {
        alloc
            .insert_existing(id, key(k))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let got: Vec<String> = requests
        .iter()
        .map(|(id, desired)| format!("{id} -> {}", alloc.allocate(id, &key(desired))))
        .collect();
    assert_eq!(got.join("\n"), expected.trim());
}

#[test]
fn free_keys_are_given_as_is() {
    check(
        &[],
        &[("f1", "1/a.pdf"), ("f2", "1/b.pdf")],
        "f1 -> 1/a.pdf\nf2 -> 1/b.pdf",
    );
}

#[test]
fn same_name_twice_gets_numbers() {
    check(
        &[],
        &[
            ("f1", "1/a.pdf"),
            ("f2", "1/a.pdf"),
            ("f3", "1/a.pdf"),
            ("f4", "1/README"),
            ("f5", "1/README"),
        ],
        "
f1 -> 1/a.pdf
f2 -> 1/a (2).pdf
f3 -> 1/a (3).pdf
f4 -> 1/README
f5 -> 1/README (2)",
    );
}

#[test]
fn case_insensitive_collisions_are_avoided() {
    check(
        &[],
        &[
            ("f1", "1/Report.PDF"),
            ("f2", "1/report.pdf"),
            ("f3", "1/É.txt"),
            ("f4", "1/é.txt"),
        ],
        "
f1 -> 1/Report.PDF
f2 -> 1/report (2).pdf
f3 -> 1/É.txt
f4 -> 1/é (2).txt",
    );
}

#[test]
fn a_file_keeps_its_key_across_runs() {
    // f2 got `a (2).pdf` in an earlier run; f1 is gone. f2 must not move to `a.pdf`.
    check(
        &[("f2", "1/a (2).pdf")],
        &[("f2", "1/a.pdf"), ("f3", "1/a.pdf"), ("f4", "1/a.pdf")],
        "
f2 -> 1/a (2).pdf
f3 -> 1/a.pdf
f4 -> 1/a (3).pdf",
    );
}

#[test]
fn a_renamed_file_gets_a_new_key_and_frees_the_old() {
    check(
        &[("f1", "1/old.pdf")],
        &[("f1", "1/new.pdf"), ("f2", "1/old.pdf")],
        "
f1 -> 1/new.pdf
f2 -> 1/old.pdf",
    );
}

#[test]
fn existing_keys_of_others_are_never_reused() {
    check(
        &[("f1", "1/a.pdf"), ("f9", "1/a (2).pdf")],
        &[("f2", "1/a.pdf"), ("f3", "1/A.PDF")],
        "
f2 -> 1/a (3).pdf
f3 -> 1/A (4).PDF",
    );
}

#[test]
fn files_and_directories_do_not_clash() {
    // A file `1/0` exists; a new key needs `1/0` as a directory: the directory is numbered.
    check(
        &[("f1", "1/0")],
        &[("f2", "1/0/a.pdf"), ("f3", "1/0/b.pdf")],
        "f2 -> 1/0 (2)/a.pdf\nf3 -> 1/0 (2)/b.pdf",
    );
    // A directory `1/x` exists; a new file key `1/x` is numbered.
    check(&[("f1", "1/x/a.pdf")], &[("f2", "1/X")], "f2 -> 1/X (2)");
}

#[test]
fn numbered_directories_are_kept_across_runs() {
    check(
        &[("f1", "1/0"), ("f2", "1/0 (2)/a.pdf")],
        &[("f2", "1/0/a.pdf")],
        "f2 -> 1/0 (2)/a.pdf",
    );
}

#[test]
fn release_frees_keys_and_directories() {
    let mut alloc = KeyAllocator::new();
    assert_eq!(alloc.allocate("f1", &key("d/a.pdf")).as_str(), "d/a.pdf");
    assert_eq!(alloc.allocate("f2", &key("d")).as_str(), "d (2)");
    assert_eq!(alloc.len(), 2);
    assert_eq!(
        alloc.release("f1").map(RelKey::into_string),
        Some("d/a.pdf".to_owned())
    );
    assert_eq!(alloc.release("f1"), None);
    assert_eq!(alloc.key_of("f2").map(RelKey::as_str), Some("d (2)"));
    assert_eq!(alloc.allocate("f3", &key("d")).as_str(), "d");
    assert_eq!(
        alloc.allocate("f4", &key("d/a.pdf")).as_str(),
        "d (3)/a.pdf"
    );
}

#[test]
fn conflicting_existing_keys_are_refused() {
    let mut alloc = KeyAllocator::new();
    let insert = |alloc: &mut KeyAllocator, id: &str, k: &str| {
        alloc.insert_existing(id, key(k)).map_err(|e| e.to_string())
    };
    assert_eq!(insert(&mut alloc, "f1", "1/a.pdf"), Ok(()));
    assert_eq!(
        insert(&mut alloc, "f2", "1/A.pdf"),
        Err("key `1/A.pdf` of file `f2` conflicts with the key of file `f1`".to_owned())
    );
    assert_eq!(
        insert(&mut alloc, "f3", "1/a.pdf/x"),
        Err(
            "key `1/a.pdf/x` of file `f3` conflicts with the key `1/a.pdf` of another file"
                .to_owned()
        )
    );
    assert_eq!(
        insert(&mut alloc, "f4", "1"),
        Err("key `1` of file `f4` conflicts with a directory of other keys".to_owned())
    );
    // Re-inserting a file's own key, or moving it, is fine.
    assert_eq!(insert(&mut alloc, "f1", "1/a.pdf"), Ok(()));
    assert_eq!(insert(&mut alloc, "f1", "1/b.pdf"), Ok(()));
    assert_eq!(alloc.len(), 1);
    // A refused move keeps the previous key.
    assert_eq!(insert(&mut alloc, "f5", "2/x"), Ok(()));
    assert!(insert(&mut alloc, "f1", "2/X").is_err());
    assert_eq!(alloc.key_of("f1").map(RelKey::as_str), Some("1/b.pdf"));
}

#[test]
fn long_names_stay_within_the_limit_when_numbered() {
    let name = format!("1/{}.pdf", "l".repeat(251));
    let mut alloc = KeyAllocator::new();
    let first = alloc.allocate("f1", &key(&name));
    let second = alloc.allocate("f2", &key(&name));
    assert_eq!(first.as_str(), name);
    assert_ne!(first, second);
    assert!(second.file_name().len() <= crate::MAX_COMPONENT_BYTES);
    assert!(second.file_name().ends_with(" (2).pdf"));
    // And the holder of a cut, numbered name keeps it next run.
    let mut next_run = KeyAllocator::new();
    next_run
        .insert_existing("f2", second.clone())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(next_run.allocate("f2", &key(&name)), second);
}

/// Property: many files wanting few keys all get distinct (case-folded) keys, and the same
/// calls give the same result.
#[test]
fn property_allocation_is_injective_and_deterministic() {
    let names = [
        "a.pdf",
        "A.pdf",
        "a (2).pdf",
        "b",
        "B",
        "b/c.pdf",
        "a.pdf/x",
        "d (2)/e",
    ];
    let run = || {
        let mut alloc = KeyAllocator::new();
        (0..400)
            .map(|i| {
                let desired = key(&format!("1/{}", names[(i * 7 + i / 3) % names.len()]));
                alloc.allocate(&format!("f{i}"), &desired).into_string()
            })
            .collect::<Vec<_>>()
    };
    let keys = run();
    let folded: std::collections::HashSet<String> = keys.iter().map(|k| k.to_lowercase()).collect();
    assert_eq!(folded.len(), keys.len(), "two files got the same key");
    for k in &keys {
        for other in &keys {
            assert!(
                !other
                    .to_lowercase()
                    .starts_with(&format!("{}/", k.to_lowercase())),
                "file `{k}` is a directory of `{other}`"
            );
        }
    }
    assert_eq!(run(), keys);
}
