//! A guard around third-party readers (polars' Parquet and CSV decoders) that may panic on
//! corrupt input: the panic becomes an error naming the file instead of a crash, and its
//! message is kept for that error instead of being printed.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once};

/// How many guarded calls are running (a reader may panic on one of its own threads).
static GUARDED: AtomicUsize = AtomicUsize::new(0);
static LAST: Mutex<Option<String>> = Mutex::new(None);
/// Guarded calls run one at a time: a panic on a reader's own thread cannot say which call it
/// belongs to, so two at once could swap their messages.
static SERIAL: Mutex<()> = Mutex::new(());
static HOOK: Once = Once::new();

/// Installs, once, a panic hook that keeps quiet about panics while a guarded call runs and
/// keeps their message; other panics (bugs of ours) are printed as before.
fn install_hook() {
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if GUARDED.load(Ordering::SeqCst) > 0 {
                let message = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into());
                let place = info
                    .location()
                    .map(|l| format!(" ({}:{})", l.file(), l.line()))
                    .unwrap_or_default();
                // The first panic is the cause; later ones are the reader passing it on.
                if let Ok(mut last) = LAST.lock() {
                    last.get_or_insert(format!("{message}{place}"));
                }
            } else {
                default(info);
            }
        }));
    });
}

/// Runs `work`; a panic inside it (on this thread or propagated from the reader's own) comes
/// back as `Err` with the panic's message. Not reentrant: `work` must not call `guarded`.
pub fn guarded<T>(work: impl FnOnce() -> T) -> Result<T, String> {
    install_hook();
    let _one_at_a_time = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Ok(mut last) = LAST.lock() {
        *last = None;
    }
    GUARDED.fetch_add(1, Ordering::SeqCst);
    let result = catch_unwind(AssertUnwindSafe(work));
    GUARDED.fetch_sub(1, Ordering::SeqCst);
    result.map_err(|payload| {
        LAST.lock()
            .ok()
            .and_then(|mut l| l.take())
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "the reader panicked".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_with_its_message() {
        assert_eq!(guarded(|| 3), Ok(3));
        let err = guarded(|| -> u8 { panic!("left != right") }).unwrap_err();
        assert!(err.contains("left != right"), "{err}");
        // A panic on another thread, propagated by joining it, is caught too.
        let err = guarded(|| {
            std::thread::spawn(|| panic!("on a reader thread"))
                .join()
                .unwrap()
        })
        .unwrap_err();
        assert!(err.contains("on a reader thread"), "{err}");
    }
}
