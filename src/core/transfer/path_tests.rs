//! The path estimate, driven through a simulated path with driven time: a bottleneck of a
//! given rate with a FIFO queue, a one-way delay each way, and a receiver that acknowledges as
//! the library's does (every [`xfer::ACK_CHUNKS`] chunks of the last one's size, or
//! [`xfer::ACK_EVERY`] bytes).

use super::*;
use std::collections::VecDeque;

/// What a simulated transfer saw.
struct Run {
    /// Bytes per second delivered over the second half of the run.
    rate: f64,
    /// Longest a chunk written in the second half waited in the bottleneck's queue.
    max_queue: Duration,
    window: u64,
    chunk: usize,
    /// Largest chunk written in the second half.
    max_chunk: usize,
    /// Every chunk started at a multiple of its size.
    aligned: bool,
}

/// Sends as the library does (a chunk whenever the window has room for it) through a path of
/// `rate` bytes/s and `delay` each way, with `extra` of processing before each
/// acknowledgement, for `secs`.
fn simulate(rate: f64, delay: Duration, extra: Duration, secs: f64) -> Run {
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(secs);
    let half = t0 + Duration::from_secs_f64(secs / 2.0);
    let mut p = Path::new(t0);
    let mut now = t0;
    let (mut sent, mut acked) = (0u64, 0u64);
    let mut busy_until = t0;
    // The receiver: what it holds and has acknowledged, and acknowledgements on their way.
    let (mut stored, mut r_acked) = (0u64, 0u64);
    let mut acks: VecDeque<(Instant, u64)> = VecDeque::new();
    let (mut delivered_half, mut max_queue, mut max_chunk) = (None, Duration::ZERO, 0);
    let mut aligned = true;
    while now < end {
        loop {
            let n = p.chunk() as u64;
            if sent - acked + n > p.window(now) {
                break;
            }
            aligned &= sent % n == 0;
            sent += n;
            p.sent(sent, now);
            let start = busy_until.max(now);
            if now >= half {
                max_queue = max_queue.max(start - now);
                max_chunk = max_chunk.max(n as usize);
            }
            busy_until = start + Duration::from_secs_f64(n as f64 / rate);
            let arrives = busy_until + delay;
            stored += n;
            if stored - r_acked >= xfer::ACK_EVERY.min(xfer::ACK_CHUNKS * n) {
                r_acked = stored;
                acks.push_back((arrives + extra + delay, stored));
            }
        }
        let (at, bytes) = acks
            .pop_front()
            .expect("a full window is always acknowledged");
        now = at;
        acked = bytes;
        p.acked(bytes, now);
        if now >= half && delivered_half.is_none() {
            delivered_half = Some((now, bytes));
        }
    }
    let (from, base) = delivered_half.expect("ran past half");
    Run {
        rate: (acked - base) as f64 / (now - from).as_secs_f64(),
        max_queue,
        window: p.window(now),
        chunk: p.chunk(),
        max_chunk,
        aligned,
    }
}

const MBIT: f64 = 1e6 / 8.0;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn before_any_measurement_a_small_window_of_small_chunks() {
    let p = Path::new(Instant::now());
    assert_eq!(p.chunk(), FIRST_CHUNK);
    assert_eq!(p.window(Instant::now()), FIRST_WINDOW);
    assert!(p.window(Instant::now()) >= MIN_CHUNKS * p.chunk() as u64);
}

#[test]
fn a_slow_path_is_filled_without_a_standing_queue_of_more_than_half_a_round_trip() {
    // 10 Mbit/s, 50 ms each way: the bandwidth-delay product is 125 kB.
    let r = simulate(10.0 * MBIT, ms(50), Duration::ZERO, 20.0);
    assert!(r.rate >= 0.97 * 10.0 * MBIT, "rate {}", r.rate);
    let rtt = ms(100);
    assert!(r.max_queue <= rtt / 2 + ms(15), "queue {:?}", r.max_queue);
    assert_eq!(r.chunk, MIN_CHUNK, "chunks follow the rate");
    assert!(r.window < 300_000, "window {}", r.window);
}

#[test]
fn a_medium_path_is_filled_with_chunks_of_a_few_milliseconds() {
    // 40 Mbit/s, 20 ms each way.
    let r = simulate(40.0 * MBIT, ms(20), Duration::ZERO, 20.0);
    assert!(r.rate >= 0.97 * 40.0 * MBIT, "rate {}", r.rate);
    assert!(r.max_queue <= ms(20) + ms(5), "queue {:?}", r.max_queue);
    let chunk_time = r.max_chunk as f64 / (40.0 * MBIT);
    assert!(
        chunk_time <= 0.006,
        "chunk {} takes {chunk_time} s",
        r.max_chunk
    );
}

#[test]
fn a_fast_path_gets_full_chunks_and_a_window_of_a_few_milliseconds() {
    // 1 Gbit/s, 1 ms each way.
    let r = simulate(1000.0 * MBIT, ms(1), Duration::ZERO, 5.0);
    assert!(r.rate >= 0.97 * 1000.0 * MBIT, "rate {}", r.rate);
    assert_eq!(r.chunk, xfer::CHUNK);
    assert!(r.max_queue <= ms(2), "queue {:?}", r.max_queue);
}

#[test]
fn a_path_whose_round_trip_is_processing_keeps_min_queue_time_in_flight() {
    // Loopback-like: 1 GB/s, 20 µs each way, 200 µs of processing per acknowledgement.
    let r = simulate(
        1e9,
        Duration::from_micros(20),
        Duration::from_micros(200),
        2.0,
    );
    assert!(r.rate >= 0.95e9, "rate {}", r.rate);
    let queue = (1e9 * MIN_QUEUE_TIME.as_secs_f64()) as u64;
    assert!(r.window >= queue * 9 / 10, "window {}", r.window);
}

#[test]
fn the_window_is_capped_by_the_protocol() {
    // 1 Gbit/s across 200 ms: the product (25 MB) is far more than a stream may hold.
    let r = simulate(1000.0 * MBIT, ms(100), Duration::ZERO, 10.0);
    assert_eq!(r.window, xfer::WINDOW);
}

#[test]
fn the_round_trip_is_the_lowest_seen_and_the_rate_forgets_old_spans() {
    let t0 = Instant::now();
    let mut p = Path::new(t0);
    p.sent(100_000, t0);
    p.acked(100_000, t0 + ms(100));
    assert_eq!(p.min_rtt(), Some(ms(100)));
    assert_eq!(p.rate(), 1e6);
    p.sent(200_000, t0 + ms(100));
    p.acked(200_000, t0 + ms(400));
    assert_eq!(
        p.min_rtt(),
        Some(ms(100)),
        "a slower round trip keeps the lowest"
    );
    assert_eq!(
        p.rate(),
        1e6,
        "the lower sample does not replace the maximum"
    );
    // Much later, a slower sample: the old maximum has aged out. Its bytes were written
    // 2.9 s after the last acknowledged chunk, acknowledged 2.8 s after its acknowledgement.
    p.sent(210_000, t0 + ms(3000));
    p.acked(210_000, t0 + ms(3200));
    assert_eq!(
        p.rate(),
        10_000.0 / 2.9,
        "over the sending interval, the longer"
    );
    // An old or repeated acknowledgement changes nothing.
    p.acked(150_000, t0 + ms(3300));
    assert_eq!(p.rate(), 10_000.0 / 2.9);
}

#[test]
fn bunched_acknowledgements_do_not_raise_the_rate() {
    // Ten chunks of 10 kB written 10 ms apart (1 MB/s) are acknowledged together at 200 ms;
    // ten more written at once then, and acknowledged together 20 ms later. The second burst
    // came 20 ms after the first, but its bytes took 100 ms to be fed: 1 MB/s, not 5.
    let t0 = Instant::now();
    let mut p = Path::new(t0);
    for i in 1..=10u64 {
        p.sent(i * 10_000, t0 + ms(i * 10));
    }
    p.acked(100_000, t0 + ms(200));
    for i in 11..=20u64 {
        p.sent(i * 10_000, t0 + ms(200));
    }
    p.acked(200_000, t0 + ms(220));
    assert!(p.rate() <= 1.01e6, "rate {}", p.rate());
}

#[test]
fn a_window_limited_by_processing_probes_for_room() {
    // 1 GB/s with 2 ms of processing per acknowledgement: more than MIN_QUEUE_TIME of the rate
    // must be in flight to fill it. The probe finds the room step by step.
    let r = simulate(1e9, Duration::from_micros(20), ms(2), 5.0);
    assert!(r.rate >= 0.9e9, "rate {}", r.rate);
}

#[test]
fn after_the_chunks_shrink_the_window_still_holds_two_of_the_last_size_and_one_more() {
    // Full chunks on a fast path, then the rate collapses (chunks of 16 KiB from then on):
    // the receiver still waits for two chunks of the size it last got (128 KiB) before it
    // acknowledges, so the window must leave room for them and the next, or both ends wait
    // for each other.
    let t0 = Instant::now();
    let mut p = Path::new(t0);
    let big = xfer::CHUNK as u64;
    p.sent(big, t0);
    p.acked(big, t0 + ms(1));
    assert_eq!(p.chunk(), xfer::CHUNK);
    p.sent(2 * big, t0 + ms(1));
    p.sent(2 * big + 1000, t0 + ms(3000));
    p.acked(2 * big + 1000, t0 + ms(4000));
    assert_eq!(p.chunk(), MIN_CHUNK, "the rate fell");
    p.sent(3 * big, t0 + ms(4000));
    let last = 3 * big - (2 * big + 1000);
    assert!(p.window(t0 + ms(4000)) >= 2 * last + p.chunk() as u64);
    // While a large chunk was the last one sent, the window holds two of them and one more.
    let mut q = Path::new(t0);
    q.sent(big, t0);
    q.acked(big, t0 + ms(1));
    q.sent(2 * big, t0 + ms(1));
    q.sent(2 * big + 1000, t0 + ms(3000));
    q.acked(2 * big + 1000, t0 + ms(4000));
    q.sent(3 * big + 1000, t0 + ms(4000));
    assert!(
        q.window(t0 + ms(4000)) >= 3 * big,
        "{}",
        q.window(t0 + ms(4000))
    );
}

#[test]
fn every_chunk_starts_at_a_multiple_of_its_size_whatever_the_rate() {
    // The receiver's writes stay aligned to their size on slow, odd and fast paths alike,
    // while the chunks grow from the first ones and follow the rate.
    for (mbit, one_way) in [(10.0, 50), (13.7, 7), (40.0, 20), (333.3, 3), (1000.0, 1)] {
        let r = simulate(mbit * MBIT, ms(one_way), Duration::ZERO, 3.0);
        assert!(
            r.aligned,
            "{mbit} Mbit/s, {one_way} ms: a chunk was not aligned"
        );
    }
    let r = simulate(1000.0 * MBIT, ms(1), Duration::ZERO, 3.0);
    assert_eq!(
        r.max_chunk,
        xfer::CHUNK,
        "a fast path still gets full chunks"
    );
}
