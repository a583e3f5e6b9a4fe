//! Locks that outlive a panic elsewhere: a poisoned mutex still guards consistent data here
//! (every critical section is a plain map update).

use std::sync::{Mutex, MutexGuard};

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}
