//! The send-file progress bar (stderr, only when it is a terminal) and the JSON progress lines.

use std::time::{Duration, Instant};

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// Bytes per second so far, if anything can be said yet.
pub fn rate(sent: u64, elapsed: Duration) -> Option<f64> {
    let secs = elapsed.as_secs_f64();
    (secs > 0.0 && sent > 0).then(|| sent as f64 / secs)
}

/// Time left at the average rate so far.
pub fn eta(sent: u64, total: u64, elapsed: Duration) -> Option<Duration> {
    let r = rate(sent, elapsed)?;
    Some(Duration::from_secs_f64(
        (total.saturating_sub(sent) as f64 / r).min(1e9),
    ))
}

/// The send-file progress bar on a terminal (`indicatif`): `[=====>    ]  45%  12.3 MiB /
/// 27.0 MiB  3.4 MiB/s  ETA 0:04`, redrawn at most ten times a second. Hidden when disabled.
pub struct Bar {
    bar: indicatif::ProgressBar,
    start: Instant,
}

impl Bar {
    pub fn new(enabled: bool) -> Bar {
        let target = if enabled {
            indicatif::ProgressDrawTarget::stderr_with_hz(10)
        } else {
            indicatif::ProgressDrawTarget::hidden()
        };
        let bar = indicatif::ProgressBar::with_draw_target(None, target);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "[{bar:24}] {percent:>3}%  {binary_bytes} / {binary_total_bytes}  {binary_bytes_per_sec}  ETA {eta}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        Bar {
            bar,
            start: Instant::now(),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    pub fn update(&mut self, sent: u64, total: u64) {
        if self.bar.length() != Some(total) {
            self.bar.set_length(total);
        }
        self.bar.set_position(sent);
    }

    /// Ends the bar's line (as last drawn) so what follows starts on a fresh one.
    pub fn finish(&mut self) {
        if !self.bar.is_finished() {
            self.bar.abandon();
        }
    }
}

/// Whether stderr is a terminal.
pub fn stderr_is_tty() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(2) == 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MiB");
    }
}
