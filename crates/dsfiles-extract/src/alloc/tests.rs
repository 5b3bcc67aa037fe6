use super::*;

fn key(s: &str) -> RelKey {
    RelKey::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

#[track_caller]
fn ok<T>(result: Result<T, Error>) -> T {
    result.unwrap_or_else(|e| panic!("{e}"))
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
        .map(|(id, desired)| format!("{id} -> {}", ok(alloc.allocate(id, &key(desired)))))
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
    assert_eq!(
        ok(alloc.allocate("f1", &key("d/a.pdf"))).as_str(),
        "d/a.pdf"
    );
    assert_eq!(ok(alloc.allocate("f2", &key("d"))).as_str(), "d (2)");
    assert_eq!(
        ok(alloc.release("f1")).map(RelKey::into_string),
        Some("d/a.pdf".to_owned())
    );
    assert_eq!(ok(alloc.release("f1")), None);
    assert_eq!(ok(alloc.key_of("f1")), None);
    assert_eq!(
        ok(alloc.key_of("f2")).map(RelKey::into_string),
        Some("d (2)".to_owned())
    );
    assert_eq!(ok(alloc.allocate("f3", &key("d"))).as_str(), "d");
    assert_eq!(
        ok(alloc.allocate("f4", &key("d/a.pdf"))).as_str(),
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
    assert_eq!(
        insert(&mut alloc, "f6", "1/A.PDF"),
        Ok(()),
        "f1's old key is free"
    );
    // A refused move keeps the previous key.
    assert_eq!(insert(&mut alloc, "f5", "2/x"), Ok(()));
    assert!(insert(&mut alloc, "f1", "2/X").is_err());
    assert_eq!(
        ok(alloc.key_of("f1")).map(RelKey::into_string),
        Some("1/b.pdf".to_owned())
    );
}

#[test]
fn long_names_stay_within_the_limit_when_numbered() {
    let name = format!("1/{}.pdf", "l".repeat(251));
    let mut alloc = KeyAllocator::new();
    let first = ok(alloc.allocate("f1", &key(&name)));
    let second = ok(alloc.allocate("f2", &key(&name)));
    assert_eq!(first.as_str(), name);
    assert_ne!(first, second);
    assert!(second.file_name().len() <= crate::MAX_COMPONENT_BYTES);
    assert!(second.file_name().ends_with(" (2).pdf"));
    // And the holder of a cut, numbered name keeps it next run.
    let mut next_run = KeyAllocator::new();
    next_run
        .insert_existing("f2", second.clone())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ok(next_run.allocate("f2", &key(&name))), second);
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
                ok(alloc.allocate(&format!("f{i}"), &desired)).into_string()
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

/// A [`MemoryStore`] that counts the keys looked up, and whose writes fail once `writes_left`
/// reaches zero (a full disk).
struct Probe {
    inner: MemoryStore,
    writes_left: usize,
    lookups: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Probe {
    fn boxed(writes_left: usize) -> (Box<Probe>, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        let lookups = std::sync::Arc::default();
        let probe = Probe {
            inner: MemoryStore::default(),
            writes_left,
            lookups: std::sync::Arc::clone(&lookups),
        };
        (Box::new(probe), lookups)
    }

    fn write(&mut self) -> Result<(), StoreError> {
        if self.writes_left == 0 {
            return Err("database or disk is full".into());
        }
        self.writes_left -= 1;
        Ok(())
    }
}

impl KeyStore for Probe {
    fn key(&self, file_id: &str) -> Result<Option<String>, StoreError> {
        self.inner.key(file_id)
    }
    fn set_key(&mut self, file_id: &str, key: &str) -> Result<(), StoreError> {
        self.write()?;
        self.inner.set_key(file_id, key)
    }
    fn remove_key(&mut self, file_id: &str) -> Result<Option<String>, StoreError> {
        self.write()?;
        self.inner.remove_key(file_id)
    }
    fn holder(&self, folded: &str) -> Result<Option<String>, StoreError> {
        (self.lookups).fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.holder(folded)
    }
    fn set_holder(&mut self, folded: &str, file_id: &str) -> Result<(), StoreError> {
        self.write()?;
        self.inner.set_holder(folded, file_id)
    }
    fn remove_holder(&mut self, folded: &str) -> Result<(), StoreError> {
        self.write()?;
        self.inner.remove_holder(folded)
    }
    fn is_dir(&self, folded: &str) -> Result<bool, StoreError> {
        self.inner.is_dir(folded)
    }
    fn count_dir(&mut self, folded: &str, up: bool) -> Result<(), StoreError> {
        self.write()?;
        self.inner.count_dir(folded, up)
    }
    fn next_number(&self, folded: &str) -> Result<Option<u32>, StoreError> {
        self.inner.next_number(folded)
    }
    fn set_next_number(&mut self, folded: &str, n: u32) -> Result<(), StoreError> {
        self.write()?;
        self.inner.set_next_number(folded, n)
    }
}

#[test]
fn a_failed_store_fails_every_later_call_with_its_reason() {
    // Holding `1/a.pdf` writes three entries (holder, directory `1`, key): the first
    // allocation fits, the second fails half-way.
    let mut alloc = KeyAllocator::with_store(Probe::boxed(4).0);
    assert_eq!(
        ok(alloc.allocate("f1", &key("1/a.pdf"))).as_str(),
        "1/a.pdf"
    );
    let failed = |r: Result<String, Error>| match r {
        Err(Error::KeyStore { reason }) => reason,
        other => panic!("expected a key store error, got {other:?}"),
    };
    let reason = "database or disk is full";
    let second = alloc
        .allocate("f2", &key("1/b.pdf"))
        .map(RelKey::into_string);
    assert_eq!(failed(second), reason);
    // Reads would succeed on the store itself, but its maps may be out of step now.
    let held = alloc.key_of("f1").map(|k| format!("{k:?}"));
    assert_eq!(failed(held), reason);
    let again = alloc
        .insert_existing("f3", key("2/c.pdf"))
        .map(|()| String::new());
    assert_eq!(failed(again), reason);
}

#[test]
fn numbering_goes_on_from_the_last_number_given() {
    let allocate = |alloc: &mut KeyAllocator, id: &str, desired: &str| {
        ok(alloc.allocate(id, &key(desired))).into_string()
    };
    let mut alloc = KeyAllocator::new();
    let given: Vec<String> = (1..=4)
        .map(|i| allocate(&mut alloc, &format!("f{i}"), "1/a.pdf"))
        .collect();
    assert_eq!(
        given,
        ["1/a.pdf", "1/a (2).pdf", "1/a (3).pdf", "1/a (4).pdf"]
    );
    // A number freed during the run is not given again by this allocator (folded names
    // share their numbering)...
    ok(alloc.release("f3"));
    assert_eq!(allocate(&mut alloc, "f5", "1/A.pdf"), "1/A (5).pdf");
    // ...but the name itself, once free, is.
    ok(alloc.release("f1"));
    assert_eq!(allocate(&mut alloc, "f6", "1/a.pdf"), "1/a.pdf");
    // The next run's allocator, seeded with what is held, finds the freed numbers again.
    let mut next_run = KeyAllocator::new();
    for (id, k) in [
        ("f2", "1/a (2).pdf"),
        ("f4", "1/a (4).pdf"),
        ("f5", "1/A (5).pdf"),
    ] {
        ok(next_run.insert_existing(id, key(k)));
    }
    assert_eq!(allocate(&mut next_run, "f7", "1/a.pdf"), "1/a.pdf");
    assert_eq!(allocate(&mut next_run, "f8", "1/a.pdf"), "1/a (3).pdf");
    assert_eq!(allocate(&mut next_run, "f9", "1/a.pdf"), "1/a (6).pdf");
}

/// 2,000 files wanting `label/scan.pdf`: each costs a few lookups, not one per file before it
/// (about four million in all).
#[test]
fn many_files_of_one_name_cost_lookups_in_proportion_to_their_number() {
    let (store, lookups) = Probe::boxed(usize::MAX);
    let mut alloc = KeyAllocator::with_store(store);
    for i in 0..2000 {
        let given = ok(alloc.allocate(&format!("f{i}"), &key("label/scan.pdf")));
        let expected = if i == 0 {
            "label/scan.pdf".to_owned()
        } else {
            format!("label/scan ({}).pdf", i + 1)
        };
        assert_eq!(given.as_str(), expected);
    }
    let lookups = lookups.load(std::sync::atomic::Ordering::Relaxed);
    assert!(lookups <= 3 * 2 * 2000, "{lookups} lookups");
}

#[test]
fn a_stored_key_takes_over_a_planned_one() {
    let mut alloc = KeyAllocator::new();
    // Dossier 2 plans a new file before dossier 1's manifest is read.
    assert_eq!(
        ok(alloc.allocate("2/new", &key("l/scan.pdf"))).as_str(),
        "l/scan.pdf"
    );
    ok(alloc.insert_existing("1/old", key("l/scan.pdf")));
    assert_eq!(
        ok(alloc.key_of("2/new")),
        None,
        "the planned file lost its key"
    );
    // Asked again (its caller found dossier 1's object there), it gets a number.
    let again = ok(alloc.allocate("2/new", &key("l/scan.pdf")));
    assert_eq!(again.as_str(), "l/scan (2).pdf");
    // A stored key is never taken over.
    let refused = alloc.insert_existing("3/other", key("L/Scan.pdf"));
    assert!(
        matches!(refused, Err(Error::KeyConflict { .. })),
        "{refused:?}"
    );
    // A found object's key is reserved once, and a manifest entry naming it takes it over.
    ok(alloc.insert_found(key("l/a.pdf")));
    ok(alloc.insert_found(key("l/a.pdf")));
    assert_eq!(
        ok(alloc.allocate("5/a", &key("l/a.pdf"))).as_str(),
        "l/a (2).pdf"
    );
    ok(alloc.insert_existing("4/a", key("l/a.pdf")));
    // A dossier.json's reservation never takes a planned key: that file may write first.
    ok(alloc.allocate("6/x", &key("6/dossier.json")));
    let refused = alloc.reserve("dossier.json:6", key("6/dossier.json"));
    assert!(
        matches!(refused, Err(Error::KeyConflict { .. })),
        "{refused:?}"
    );
    ok(alloc.reserve("dossier.json:7", key("7/dossier.json")));
}

#[test]
fn a_refused_insert_leaves_the_previous_key_held_as_it_was() {
    let mut alloc = KeyAllocator::new();
    ok(alloc.insert_existing("g", key("l/b.pdf")));
    ok(alloc.allocate("f", &key("l/a.pdf")));
    let refused = alloc.insert_existing("f", key("l/b.pdf"));
    assert!(
        matches!(refused, Err(Error::KeyConflict { .. })),
        "{refused:?}"
    );
    // `f` still holds `l/a.pdf`, and still only as planned: a stored key takes it over.
    assert_eq!(
        ok(alloc.key_of("f")).map(RelKey::into_string),
        Some("l/a.pdf".to_owned())
    );
    ok(alloc.insert_existing("h", key("l/a.pdf")));
    assert_eq!(ok(alloc.key_of("f")), None);
}
