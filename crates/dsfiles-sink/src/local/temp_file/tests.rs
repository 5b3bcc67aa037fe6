use super::*;

fn data(len: usize) -> Vec<u8> {
    crate::testing::pseudo_random(len, 1)
}

/// Whether the file system of `dir` takes `O_DIRECT` (tmpfs before Linux 6.6 does not).
fn direct_supported(dir: &Path) -> bool {
    let probe = dir.join("probe");
    let file = TempFile::create(&probe, true).expect("create probe");
    let direct = file.is_direct();
    drop(file);
    std::fs::remove_file(probe).expect("remove probe");
    direct
}

/// The `flags:` line of `/proc/self/fdinfo` for `file`: the open flags the kernel applies.
#[cfg(target_os = "linux")]
fn open_flags(file: &TempFile) -> i32 {
    use std::os::fd::AsRawFd as _;
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", file.file.as_raw_fd()))
        .expect("fdinfo");
    let flags = info
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .expect("flags line");
    i32::from_str_radix(flags.trim(), 8).expect("octal flags")
}

#[test]
fn blocks_are_aligned_fill_to_capacity_and_pad_with_zeros() {
    let mut block = Block::new(2 * ALIGN);
    assert_eq!(
        block.mem.capacity(),
        0,
        "nothing allocated before data comes"
    );
    assert_eq!(block.fill(&[7; 100]), 100);
    assert_eq!(block.filled().as_ptr() as usize % ALIGN, 0);
    let address = block.filled().as_ptr();
    assert_eq!(block.fill(&[8; 3 * ALIGN]), 2 * ALIGN - 100);
    assert!(block.is_full());
    assert_eq!(block.fill(&[9; 10]), 0);
    block.clear();
    assert_eq!(block.len(), 0);
    // Padding zeroes what an earlier, longer fill left behind.
    block.fill(&[1; 5]);
    let padded = block.padded();
    assert_eq!(padded.len(), ALIGN);
    assert_eq!(&padded[..5], &[1; 5]);
    assert!(padded[5..].iter().all(|&b| b == 0));
    // A whole number of blocks needs no padding.
    block.clear();
    block.fill(&[2; ALIGN]);
    assert_eq!(block.padded().len(), ALIGN);
    // The buffer never moved: its first allocation already held the whole capacity.
    assert_eq!(block.filled().as_ptr(), address);
}

#[test]
fn a_block_grows_by_doubling_keeps_its_data_aligned_and_pads_in_place() {
    let capacity = 64 * ALIGN;
    let mut small = Block::new(capacity);
    small.fill(&[5; 4000]);
    assert!(
        small.mem.capacity() <= FIRST_ALLOCATION + ALIGN,
        "a small file holds a small buffer: {}",
        small.mem.capacity()
    );
    let content = data(capacity);
    let mut block = Block::new(capacity);
    let mut addresses = Vec::new();
    let mut at = 0;
    while !block.is_full() {
        let piece = &content[at..(at + 1000).min(capacity)];
        at += block.fill(piece);
        let filled = block.filled();
        assert_eq!(filled.as_ptr() as usize % ALIGN, 0, "aligned at {at}");
        assert!(filled == &content[..at], "data kept at {at}");
        if addresses.last() != Some(&filled.as_ptr()) {
            addresses.push(filled.as_ptr());
        }
        // Padding always fits the allocation: `mem` must not reallocate (and lose alignment).
        let before = block.mem.as_ptr();
        let padded = block.padded().len();
        assert_eq!(padded, at.next_multiple_of(ALIGN));
        assert_eq!(
            block.mem.as_ptr(),
            before,
            "padding moved the buffer at {at}"
        );
        block.mem.truncate(block.start + at);
    }
    // 16, 32, 64, 128 and 256 KiB: five allocations, then never again.
    assert_eq!(addresses.len(), 5, "{addresses:?}");
    block.clear();
    block.fill(&content);
    assert_eq!(block.filled().as_ptr(), *addresses.last().unwrap());
}

/// Writes `content` through a buffer of `capacity` bytes, in pieces of `piece` bytes, as an
/// upload does; returns whether the file stayed direct.
fn write_through(path: &Path, direct: bool, content: &[u8], capacity: usize, piece: usize) -> bool {
    let mut file = TempFile::create(path, direct).expect("create");
    let mut block = Block::new(capacity);
    for mut rest in content.chunks(piece.max(1)) {
        while !rest.is_empty() {
            rest = &rest[block.fill(rest)..];
            if block.is_full() {
                file.write_block(path, &mut block).expect("write block");
            }
        }
    }
    file.finish(path, &mut block).expect("finish");
    file.sync_data().expect("sync");
    file.is_direct()
}

#[test]
fn every_length_round_trips_exactly_with_and_without_direct_io() {
    let dir = tempfile::tempdir().expect("tempdir");
    let supported = direct_supported(dir.path());
    let capacity = 4 * ALIGN;
    let content = data(3 * capacity + ALIGN + 17);
    let lengths = [
        0,
        1,
        ALIGN - 1,
        ALIGN,
        ALIGN + 1,
        capacity - 1,
        capacity,
        capacity + 1,
        3 * capacity + ALIGN + 17,
    ];
    for direct in [true, false] {
        for (i, &len) in lengths.iter().enumerate() {
            for piece in [1000, 7 * ALIGN] {
                let path = dir.path().join(format!("f-{direct}-{i}-{piece}"));
                let stayed = write_through(&path, direct, &content[..len], capacity, piece);
                assert_eq!(stayed, direct && supported, "{path:?}");
                let back = std::fs::read(&path).expect("read back");
                assert_eq!(back.len(), len, "{path:?}");
                assert!(back == content[..len], "{path:?}: content differs");
            }
        }
    }
}

#[cfg(target_os = "linux")]
#[test]
fn direct_files_are_opened_with_o_direct() {
    let dir = tempfile::tempdir().expect("tempdir");
    let direct = TempFile::create(&dir.path().join("d"), true).expect("create");
    let buffered = TempFile::create(&dir.path().join("b"), false).expect("create");
    assert_eq!(open_flags(&buffered) & libc::O_DIRECT, 0);
    assert!(!buffered.refused_direct(), "buffered was asked for");
    if direct.is_direct() {
        assert_ne!(open_flags(&direct) & libc::O_DIRECT, 0);
    } else {
        assert!(direct.refused_direct());
        assert_eq!(open_flags(&direct) & libc::O_DIRECT, 0);
        assert!(!direct_supported(dir.path()));
    }
}

/// A file system may take `O_DIRECT` at `open` and refuse a write: the file goes on buffered,
/// keeping what was written before, and its content comes out whole.
#[cfg(target_os = "linux")]
#[test]
fn a_refused_direct_write_falls_back_to_buffered_without_losing_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("f");
    let mut file = TempFile::create(&path, true).expect("create");
    if !file.is_direct() {
        // Nothing to refuse on this file system: it already writes buffered.
        assert!(!direct_supported(dir.path()));
        return;
    }
    let content = data(3 * ALIGN + 10);
    let mut block = Block::new(2 * ALIGN);
    block.fill(&content[..2 * ALIGN]);
    file.write_block(&path, &mut block).expect("aligned write");
    assert!(file.is_direct() && !file.refused_direct());
    // Misaligned memory and length: every file system that takes O_DIRECT refuses it (EINVAL).
    block.fill(&content[2 * ALIGN - 1..]);
    let misaligned = &block.filled()[1..];
    file.write(&path, misaligned).expect("write after fallback");
    file.len += misaligned.len() as u64;
    assert!(!file.is_direct() && file.refused_direct());
    assert_eq!(open_flags(&file) & libc::O_DIRECT, 0);
    block.clear();
    file.finish(&path, &mut block).expect("finish");
    assert_eq!(std::fs::read(&path).expect("read back"), content);
}
