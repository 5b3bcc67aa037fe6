use super::*;
use crate::extract::{KeyAllocator, RelKey};

/// Components the random calls build keys from: case variants, numbered names, names that
/// are also directories — every rule of the allocator gets exercised.
const PARTS: [&str; 9] = [
    "a.pdf",
    "A.pdf",
    "a (2).pdf",
    "b",
    "B",
    "c.pdf",
    "d (2)",
    "x",
    "X",
];

fn random_key(rng: &mut fastrand::Rng) -> RelKey {
    let depth = rng.usize(1..=3);
    let parts: Vec<&str> = (0..depth)
        .map(|_| PARTS[rng.usize(..PARTS.len())])
        .collect();
    RelKey::parse(&parts.join("/")).unwrap_or_else(|e| panic!("{e}"))
}

/// One random call on `alloc`, and what it answered.
fn call(alloc: &mut KeyAllocator, op: usize, id: &str, key: RelKey) -> String {
    match op {
        0..=4 => format!("allocate {id} {key}: {:?}", alloc.allocate(id, &key)),
        5 | 6 => format!(
            "existing {id} {key}: {:?}",
            alloc.insert_existing(id, key.clone())
        ),
        7 => format!("release {id}: {:?}", alloc.release(id)),
        _ => format!("key_of {id}: {:?}", alloc.key_of(id)),
    }
}

/// The store on disk answers exactly as the one on the heap, call after call, across
/// transaction boundaries (a commit every 3 writes).
#[test]
fn the_disk_store_decides_as_the_memory_store_does() {
    for seed in 0..20 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut memory = KeyAllocator::new();
        let store = DiskStore::open_with(3).unwrap_or_else(|e| panic!("{e}"));
        let mut disk = KeyAllocator::with_store(Box::new(store));
        for step in 0..400 {
            let (op, id, key) = (
                rng.usize(..9),
                format!("f{}", rng.usize(..40)),
                random_key(&mut rng),
            );
            let expected = call(&mut memory, op, &id, key.clone());
            let got = call(&mut disk, op, &id, key);
            assert_eq!(got, expected, "seed {seed}, step {step}");
        }
    }
}

#[test]
fn the_store_is_a_private_temporary_database_with_a_capped_cache() {
    let store = DiskStore::open().unwrap_or_else(|e| panic!("{e}"));
    let file: String = (store.db)
        .query_row(
            "SELECT file FROM pragma_database_list WHERE name = 'main'",
            [],
            |r| r.get(0),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        file, "",
        "an unnamed database: SQLite deletes it with the connection"
    );
    let cache: i64 = (store.db)
        .query_row("PRAGMA cache_size", [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cache, -i64::from(CACHE_KIB));
}
