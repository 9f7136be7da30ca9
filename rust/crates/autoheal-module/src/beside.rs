//! Work that runs beside the calling thread, on another core.
//!
//! A run hashes the file on one core while it plans (or writes) on the other. Linux may start a
//! new thread on the very core of the thread that spawned it; both then take turns on that core
//! until the next load balance, a scheduler tick later, and on a large file the run takes half as
//! long again. [`spawn`] lets a thread started there move itself to another core it may use;
//! [`Pending`] holds such work's result until someone needs it.

use std::sync::{Mutex, OnceLock, PoisonError};
use std::thread::{Scope, ScopedJoinHandle};

use rustix::thread::{sched_getaffinity, sched_getcpu, sched_setaffinity, sched_yield, CpuSet};

/// Spawns `work` in `scope`, away from the calling thread's core when the process may use another.
pub fn spawn<'scope, T, F>(scope: &'scope Scope<'scope, '_>, work: F) -> ScopedJoinHandle<'scope, T>
where
    F: FnOnce() -> T + Send + 'scope,
    T: Send + 'scope,
{
    let spawner_core = sched_getcpu();
    let handle = scope.spawn(move || {
        leave_core(spawner_core);
        work()
    });
    // A thread queued on this core runs now and moves away; otherwise this returns at once.
    sched_yield();
    handle
}

/// A value being worked out on another core: [`Pending::get`] waits for it, the first time, from
/// whichever thread asks first.
pub struct Pending<'scope, T> {
    work: Mutex<Option<ScopedJoinHandle<'scope, T>>>,
    value: OnceLock<T>,
}

impl<T> std::fmt::Debug for Pending<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("done", &self.value.get().is_some())
            .finish()
    }
}

impl<'scope, T: Send + 'scope> Pending<'scope, T> {
    /// Starts `work` in `scope` (as [`spawn`] does).
    pub fn start<F>(scope: &'scope Scope<'scope, '_>, work: F) -> Self
    where
        F: FnOnce() -> T + Send + 'scope,
    {
        Self {
            work: Mutex::new(Some(spawn(scope, work))),
            value: OnceLock::new(),
        }
    }

    /// The value, once the work is done. A panic in the work is raised in the first caller (and
    /// any later one panics too: the work is not run again).
    pub fn get(&self) -> &T {
        self.value.get_or_init(|| {
            let work = self
                .work
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
                .expect("taken only by the one initialisation");
            work.join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

/// Moves the calling thread off `core` if it runs there and may run elsewhere.
fn leave_core(core: usize) {
    if sched_getcpu() != core {
        return;
    }
    if let Ok(allowed) = sched_getaffinity(None) {
        move_off(core, &allowed);
    }
}

/// Moves the calling thread to a core of `allowed` other than `core`, then lets it run on any of
/// `allowed`: the move is made and nothing stays pinned. Returns the core it moved to, if it moved.
fn move_off(core: usize, allowed: &CpuSet) -> Option<usize> {
    let mut elsewhere = *allowed;
    elsewhere.unset(core);
    if elsewhere.count() == 0 {
        return None;
    }
    // Only a hint: if the kernel refuses, the work runs where it is.
    sched_setaffinity(None, &elsewhere).ok()?;
    let moved_to = sched_getcpu();
    let _ = sched_setaffinity(None, allowed);
    Some(moved_to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_work_runs_and_its_result_comes_back() {
        let text = String::from("sha256 me");
        let len = std::thread::scope(|scope| spawn(scope, || text.len()).join().unwrap());
        assert_eq!(len, 9);
    }

    #[test]
    fn a_pending_value_reaches_whoever_asks() {
        let (here, there) = std::thread::scope(|scope| {
            let pending = Pending::start(scope, || String::from("sha256"));
            let there = std::thread::scope(|inner| inner.spawn(|| pending.get().clone()).join());
            (pending.get().clone(), there.unwrap())
        });
        assert_eq!((here.as_str(), there.as_str()), ("sha256", "sha256"));
    }

    #[test]
    #[should_panic(expected = "hash failed")]
    fn a_panic_in_the_work_reaches_the_one_who_waits() {
        std::thread::scope(|scope| {
            let pending: Pending<'_, ()> = Pending::start(scope, || panic!("hash failed"));
            pending.get();
        });
    }

    /// Runs `check` on a new thread that may run on `core` only.
    fn pinned_to<T: Send>(core: usize, check: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let mut only = CpuSet::new();
                    only.set(core);
                    sched_setaffinity(None, &only).unwrap();
                    check()
                })
                .join()
                .unwrap()
        })
    }

    #[test]
    fn a_thread_moves_off_a_core_to_another_it_may_use_and_stays_free() {
        let allowed = sched_getaffinity(None).unwrap();
        let core = sched_getcpu();
        let (moved_to, affinity) = pinned_to(core, || {
            (move_off(core, &allowed), sched_getaffinity(None).unwrap())
        });
        if allowed.count() > 1 {
            let moved_to = moved_to.expect("another core was allowed");
            assert_ne!(moved_to, core);
            assert!(
                allowed.is_set(moved_to),
                "moved to core {moved_to}, not allowed"
            );
            assert_eq!(affinity, allowed, "pinned after the move");
        } else {
            assert_eq!(moved_to, None, "one core allowed: nowhere else to go");
        }
    }

    #[test]
    fn a_thread_with_one_core_allowed_stays_on_it() {
        let core = sched_getcpu();
        let mut only = CpuSet::new();
        only.set(core);
        let (moved_to, affinity) = pinned_to(core, || {
            (move_off(core, &only), sched_getaffinity(None).unwrap())
        });
        assert_eq!(moved_to, None);
        assert_eq!(affinity, only);
    }
}
