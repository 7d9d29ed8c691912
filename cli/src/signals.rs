//! SIGINT and SIGTERM, on `signal-hook`: the handler only records the signal; the event loop
//! polls it between events (at least every 50 ms) and winds the command down. A second signal
//! while winding down exits at once (status 128 + the signal).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;

/// The first signal received (0: none), and whether one was.
struct Pending {
    signal: Arc<AtomicUsize>,
    seen: Arc<AtomicBool>,
}

static PENDING: OnceLock<Pending> = OnceLock::new();

/// Installs the handlers; call before the client starts its threads.
pub fn install() {
    let p = PENDING.get_or_init(|| Pending {
        signal: Arc::new(AtomicUsize::new(0)),
        seen: Arc::new(AtomicBool::new(false)),
    });
    for sig in [SIGINT, SIGTERM] {
        // In this order for each signal: a second one exits (the check runs before the flag of
        // the first is set); the first records which it was.
        let registered = flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(&p.seen))
            .and_then(|_| flag::register_usize(sig, Arc::clone(&p.signal), sig as usize))
            .and_then(|_| flag::register(sig, Arc::clone(&p.seen)));
        if let Err(e) = registered {
            eprintln!("crvm: cannot handle signal {sig}: {e}");
        }
    }
}

/// The signal received, if any.
pub fn pending() -> Option<i32> {
    let p = PENDING.get()?;
    match p.signal.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(sig as i32),
    }
}
