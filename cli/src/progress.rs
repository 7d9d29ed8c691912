//! The send-file progress bar (stderr, only when it is a terminal) and the JSON progress lines.

use std::io::Write;
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

pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
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

/// One line of the bar: `[=====>    ]  45%  12.3 MiB / 27.0 MiB  3.4 MiB/s  ETA 0:04`.
pub fn render(sent: u64, total: u64, elapsed: Duration) -> String {
    const WIDTH: usize = 24;
    let frac = if total == 0 {
        1.0
    } else {
        (sent as f64 / total as f64).clamp(0.0, 1.0)
    };
    let filled = (frac * WIDTH as f64) as usize;
    let mut bar = "=".repeat(filled);
    if filled < WIDTH {
        bar.push('>');
        bar.push_str(&" ".repeat(WIDTH - filled - 1));
    }
    let rate = rate(sent, elapsed)
        .map(|r| format!("{}/s", human_bytes(r as u64)))
        .unwrap_or_else(|| "--/s".to_owned());
    let eta = if sent >= total {
        "done".to_owned()
    } else {
        eta(sent, total, elapsed)
            .map(|d| format!("ETA {}", human_duration(d)))
            .unwrap_or_else(|| "ETA --:--".to_owned())
    };
    format!(
        "[{bar}] {:>3}%  {} / {}  {rate}  {eta}",
        (frac * 100.0) as u32,
        human_bytes(sent),
        human_bytes(total)
    )
}

/// Draws the bar on a terminal, redrawing at most every 100 ms (and always the last state).
pub struct Bar {
    enabled: bool,
    start: Instant,
    last: Option<Instant>,
    drawn: bool,
}

impl Bar {
    pub fn new(enabled: bool) -> Bar {
        Bar {
            enabled,
            start: Instant::now(),
            last: None,
            drawn: false,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    pub fn update(&mut self, sent: u64, total: u64) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if sent < total
            && self
                .last
                .is_some_and(|t| now - t < Duration::from_millis(100))
        {
            return;
        }
        self.last = Some(now);
        self.drawn = true;
        let line = render(sent, total, self.start.elapsed());
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{line}\x1b[K");
        let _ = err.flush();
    }

    /// Ends the bar's line so what follows starts on a fresh one.
    pub fn finish(&mut self) {
        if self.drawn {
            eprintln!();
            self.drawn = false;
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
        assert_eq!(human_duration(Duration::from_secs(65)), "1:05");
        assert_eq!(human_duration(Duration::from_secs(3725)), "1:02:05");
    }

    #[test]
    fn bar_line() {
        let mib = 1024 * 1024;
        let line = render(5 * mib, 10 * mib, Duration::from_secs(5));
        assert_eq!(
            line,
            "[============>           ]  50%  5.0 MiB / 10.0 MiB  1.0 MiB/s  ETA 0:05"
        );
        let line = render(10 * mib, 10 * mib, Duration::from_secs(5));
        assert!(
            line.starts_with("[========================] 100%"),
            "{line}"
        );
        assert!(line.ends_with("2.0 MiB/s  done"), "{line}");
        assert!(render(0, 10, Duration::ZERO).ends_with("--/s  ETA --:--"));
        assert!(render(0, 0, Duration::ZERO).contains("100%"));
    }
}
