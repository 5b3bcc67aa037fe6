//! Whether a lease's holder is a process of this machine that no longer exists.
//!
//! A `kill -9`, an OOM kill or a power cut leaves the lease in the destination for its TTL.
//! When the holder ran on this very machine, the machine itself knows it is gone, and making
//! the rerun wait two minutes (or need `--break-lease`) would only punish the operator. The
//! rule, a pure function ([`gone`]) of the holder's [`ProcessId`] and this process's:
//!
//! - no `process` in the lease (an earlier version), or none for this process (no `/proc`):
//!   **unknown**, treated as alive — the lease then expires as usual;
//! - another `machine` (another kernel boot, or another PID namespace such as another
//!   container, where the pid means something else): **unknown**, alive;
//! - the same `instance`: it is this very process (another run of an embedding program):
//!   **alive**;
//! - the same pid as this process but another instance: a previous process that had our pid
//!   (a restarted container's pid 1): **gone**;
//! - otherwise: gone exactly when no process has that pid. A recycled pid makes a dead holder
//!   look alive, never the reverse: the error is always on the side of waiting.
//!
//! `machine` is the kernel's boot id with the PID namespace's inode, so equal machines share
//! one pid space; `instance` is random per process.

use std::sync::OnceLock;

use crate::wire::{Holder, ProcessId};

/// This process's [`ProcessId`], `None` where `/proc` does not tell the machine.
pub fn this_process() -> Option<ProcessId> {
    static THIS: OnceLock<Option<ProcessId>> = OnceLock::new();
    THIS.get_or_init(|| {
        Some(ProcessId {
            machine: machine()?,
            instance: uuid::Uuid::new_v4().simple().to_string(),
        })
    })
    .clone()
}

/// Whether `holder` is known to be a process of this machine that no longer exists.
pub fn is_gone(holder: &Holder) -> bool {
    gone(
        holder,
        this_process().as_ref(),
        std::process::id(),
        pid_exists,
    )
}

/// The rule of the module docs; `exists` looks a pid up on this machine.
pub fn gone(
    holder: &Holder,
    me: Option<&ProcessId>,
    my_pid: u32,
    exists: impl Fn(u32) -> bool,
) -> bool {
    let (Some(theirs), Some(me)) = (&holder.process, me) else {
        return false;
    };
    if theirs.machine != me.machine || theirs.instance == me.instance {
        return false;
    }
    holder.pid == my_pid || !exists(holder.pid)
}

/// `{boot id}/{pid namespace}`, from `/proc`.
fn machine() -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let namespace = std::fs::read_link("/proc/self/ns/pid").ok()?;
    Some(format!("{}/{}", boot.trim(), namespace.display()))
}

fn pid_exists(pid: u32) -> bool {
    // A pid directory exists for every live process (and zombies, which are not yet reaped:
    // alive for this purpose). An unreadable /proc makes every holder look alive.
    std::path::Path::new("/proc").join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(machine: &str, instance: &str) -> ProcessId {
        ProcessId {
            machine: machine.into(),
            instance: instance.into(),
        }
    }

    fn holder(pid: u32, process: Option<ProcessId>) -> Holder {
        Holder {
            host: "h".into(),
            pid,
            replica: None,
            tool: "dsfiles".into(),
            process,
        }
    }

    /// `(holder pid, holder process, this process, live pids, expected gone)`.
    #[test]
    fn gone_only_when_this_machine_knows() {
        let me = id("boot/pid:[1]", "me");
        let table = [
            (7, None, Some(me.clone()), vec![], false),
            (7, Some(id("boot/pid:[1]", "old")), None, vec![], false),
            (
                7,
                Some(id("boot/pid:[2]", "old")),
                Some(me.clone()),
                vec![],
                false,
            ),
            (
                7,
                Some(id("other/pid:[1]", "old")),
                Some(me.clone()),
                vec![],
                false,
            ),
            (
                7,
                Some(id("boot/pid:[1]", "me")),
                Some(me.clone()),
                vec![],
                false,
            ),
            (
                100,
                Some(id("boot/pid:[1]", "old")),
                Some(me.clone()),
                vec![100],
                true,
            ),
            (
                7,
                Some(id("boot/pid:[1]", "old")),
                Some(me.clone()),
                vec![7],
                false,
            ),
            (
                7,
                Some(id("boot/pid:[1]", "old")),
                Some(me.clone()),
                vec![],
                true,
            ),
        ];
        for (pid, theirs, mine, live, expected) in table {
            let h = holder(pid, theirs.clone());
            let got = gone(&h, mine.as_ref(), 100, |p| live.contains(&p));
            assert_eq!(
                got, expected,
                "holder pid {pid} {theirs:?}, me {mine:?}, live {live:?}"
            );
        }
    }

    #[test]
    fn this_process_is_alive_and_a_dead_pid_is_gone() {
        let Some(me) = this_process() else {
            return; // no /proc here: every holder is unknown, tested above
        };
        let mine = holder(std::process::id(), Some(me.clone()));
        assert!(!is_gone(&mine));
        let previous = ProcessId {
            instance: "previous".into(),
            ..me
        };
        // A pid above the kernel's pid_max (4194304 at most) never exists.
        assert!(is_gone(&holder(4_194_305, Some(previous))));
    }
}
