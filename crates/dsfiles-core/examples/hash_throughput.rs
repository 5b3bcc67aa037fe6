//! Hashing throughput on this machine: MD5 alone, SHA-256 alone, both in sequence on one thread
//! (dsfiles' scheme before `dsfiles_core::hash`), and [`dsfiles_core::hash::Hasher`] (SHA-256 on
//! the caller's task, MD5 in the process' MD5 engine), over the same in-memory data cut into network-sized chunks.
//!
//! Besides wall-clock MB/s, each line gives MB per CPU-second of the whole process (from
//! `/proc/self/stat`, Linux only): on a busy machine the wall clock measures the neighbours, the
//! CPU time still measures the code.
//!
//! ```text
//! cargo run --release -p dsfiles-core --example hash_throughput -- [MiB (default 256)] [chunk KiB (default 64)]
//! ```
#![allow(clippy::print_stdout, reason = "an example reports on stdout")]

use std::time::Instant;

use bytes::Bytes;
use dsfiles_core::hash::Hasher;
use md5::Digest as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mib: usize = args.next().map_or(Ok(256), |a| a.parse())?;
    let chunk_kib: usize = args.next().map_or(Ok(64), |a| a.parse())?;
    let data = Bytes::from(
        (0..mib * 1024 * 1024)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect::<Vec<u8>>(),
    );
    let chunks: Vec<Bytes> = (0..data.len())
        .step_by(chunk_kib * 1024)
        .map(|at| data.slice(at..(at + chunk_kib * 1024).min(data.len())))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    println!(
        "{mib} MiB in {} chunks of {chunk_kib} KiB, {} cores",
        chunks.len(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    for round in 0..2 {
        let measure = |name: &'static str, f: &mut dyn FnMut() -> String| {
            let (start, cpu_start) = (Instant::now(), cpu_secs());
            let digest = f();
            let secs = start.elapsed().as_secs_f64();
            let cpu = cpu_secs().zip(cpu_start).map(|(end, start)| end - start);
            let mb = data.len() as f64 / 1e6;
            // The first round warms caches and the blocking pool; the second one is reported.
            if round == 1 {
                let per_cpu = cpu.map_or("?".to_owned(), |cpu| format!("{:.0}", mb / cpu));
                println!(
                    "{name:<44} {:>6.0} MB/s wall {per_cpu:>6} MB/CPU-s  ({digest})",
                    mb / secs
                );
            }
        };
        measure("MD5 alone", &mut || {
            let mut md5 = md5::Md5::new();
            chunks.iter().for_each(|c| md5.update(c));
            hex::encode(md5.finalize())
        });
        measure("SHA-256 alone", &mut || {
            let mut sha = sha2::Sha256::new();
            chunks.iter().for_each(|c| sha.update(c));
            hex::encode(sha.finalize())
        });
        measure("MD5 then SHA-256 per chunk, one thread", &mut || {
            let mut md5 = md5::Md5::new();
            let mut sha = sha2::Sha256::new();
            for c in &chunks {
                md5.update(c);
                sha.update(c);
            }
            format!(
                "{} {}",
                hex::encode(md5.finalize()),
                hex::encode(sha.finalize())
            )
        });
        measure("hash::Hasher (inline SHA-256 + MD5 engine)", &mut || {
            runtime.block_on(async {
                let mut hasher = Hasher::start();
                for c in &chunks {
                    hasher.update(c.clone()).await;
                }
                match hasher.finish().await {
                    Ok(d) => format!("{} {}", d.md5_base64, d.sha256_hex),
                    Err(e) => format!("failed: {e}"),
                }
            })
        });
    }
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average: {}", load.trim());
    }
    Ok(())
}

/// User + system CPU time of this process so far, in seconds (`None` off Linux).
fn cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name; clock ticks
    // are 1/100 s on Linux.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}
