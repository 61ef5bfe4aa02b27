//! Pre-start steps: the wait-for probes (TCP, HTTP, unix socket, file) and
//! their retry loop. Commands are run by the supervisor, which owns the
//! children.
//!
//! * `target`: the `--wait-for` URL, parsed at configuration time;
//! * `probe`: one attempt, bounded by a timeout;
//! * `resolve`: host names looked up on a short-lived thread, because the
//!   init has one current-thread runtime and no thread pool (SPEC 10);
//! * here: `wait_for`, the retry loop with capped backoff.
//!
//! Everything is cancel-safe: the supervisor races `wait_for` against its
//! signal stream, and dropping the future closes every socket at once.

mod probe;
mod resolve;

use std::time::Duration;

use tokio::time::Instant;

use crate::vocab::format_duration;

pub use crate::vocab::WaitTarget as Target;
pub use probe::probe;

/// The first pause between attempts; it doubles up to `MAX_DELAY`.
pub const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The longest pause between attempts, so a target that comes up is seen
/// within about this long.
pub const MAX_DELAY: Duration = Duration::from_secs(2);
/// The longest single attempt (a peer that accepts and never answers, a
/// slow DNS server); the overall timeout may cut it shorter.
pub const MAX_ATTEMPT: Duration = Duration::from_secs(5);
/// How often, at most, a still-failing wait is reported after the first
/// failure.
pub const REPORT_EVERY: Duration = Duration::from_secs(5);

/// A progress report from `wait_for`, for the log.
#[derive(Clone, Debug)]
pub struct Progress {
    /// The attempt that just failed, from 1.
    pub attempt: u32,
    /// Time since the wait began.
    pub elapsed: Duration,
    pub last_error: String,
}

/// Retries `probe` with capped backoff until it succeeds or `timeout`
/// passes; calls `progress` now and then so a user watching the logs sees
/// what is awaited. Cancel-safe: dropping the future stops the wait.
///
/// `progress` runs after the first failed attempt, then after a failed
/// attempt once `REPORT_EVERY` has passed since the last report. Returns
/// how long the wait took, or a message naming the target, how long it was
/// waited for and the last error. A zero `timeout` means one attempt (of at
/// most `MAX_ATTEMPT`) and no retry.
pub async fn wait_for(
    target: &Target,
    timeout: Duration,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Duration, String> {
    let start = Instant::now();
    // `None`: a timeout too large for the clock, which is as good as never.
    let deadline = start.checked_add(timeout);
    let mut delay = FIRST_DELAY;
    let mut attempt: u32 = 0;
    let mut last_report: Option<Instant> = None;
    let mut last_error: Option<String> = None;
    loop {
        attempt = attempt.saturating_add(1);
        let remaining = time_left(deadline, Instant::now());
        let bound = if timeout.is_zero() {
            MAX_ATTEMPT
        } else {
            remaining.min(MAX_ATTEMPT)
        };
        let error = match tokio::time::timeout(bound, probe::attempt(target)).await {
            Ok(Ok(())) => return Ok(start.elapsed()),
            Ok(Err(e)) => e,
            // The overall deadline cut this attempt short (the last one is
            // often left only a few milliseconds): "no answer within 12ms"
            // would hide what the earlier attempts said (HTTP 500,
            // refused...), so that stays the last error.
            Err(_) => match last_error.take() {
                Some(earlier) if bound < MAX_ATTEMPT => earlier,
                _ => probe::no_answer(bound),
            },
        };
        let error: &str = last_error.insert(error);

        let now = Instant::now();
        if last_report.is_none_or(|at| now.duration_since(at) >= REPORT_EVERY) {
            last_report = Some(now);
            progress(&Progress {
                attempt,
                elapsed: now.duration_since(start),
                last_error: error.to_string(),
            });
        }

        let remaining = time_left(deadline, now);
        if remaining.is_zero() {
            return Err(format!(
                "{target} did not answer within {} ({attempt} {}); last error: {error}",
                format_duration(round(now.duration_since(start))),
                if attempt == 1 { "attempt" } else { "attempts" },
            ));
        }
        tokio::time::sleep(delay.min(remaining)).await;
        delay = next_delay(delay);
    }
}

fn time_left(deadline: Option<Instant>, now: Instant) -> Duration {
    match deadline {
        Some(d) => d.saturating_duration_since(now),
        None => Duration::MAX,
    }
}

/// Doubles, capped at `MAX_DELAY`.
fn next_delay(delay: Duration) -> Duration {
    delay.saturating_mul(2).min(MAX_DELAY)
}

/// To the tenth of a second, for messages: "waited 30s", not "30.0127s".
fn round(d: Duration) -> Duration {
    let tenths = (d.as_millis() + 50) / 100;
    Duration::from_millis(u64::try_from(tenths * 100).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn backoff_doubles_to_the_cap() {
        let mut d = FIRST_DELAY;
        let mut seen = vec![d];
        for _ in 0..8 {
            d = next_delay(d);
            seen.push(d);
        }
        let ms: Vec<u128> = seen.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 2000, 2000, 2000, 2000]);
        assert_eq!(next_delay(Duration::MAX), MAX_DELAY);
    }

    #[test]
    fn rounding_for_messages() {
        assert_eq!(
            round(Duration::from_millis(30_012)),
            Duration::from_secs(30)
        );
        assert_eq!(
            round(Duration::from_millis(1_460)),
            Duration::from_millis(1_500)
        );
        assert_eq!(round(Duration::ZERO), Duration::ZERO);
    }

    fn missing_file() -> Target {
        let p = std::env::temp_dir().join(format!("cinit-unit-missing-{}", std::process::id()));
        Target::File(p)
    }

    #[test]
    fn present_file_succeeds_at_once_without_report() {
        let target = Target::File(std::env::temp_dir());
        let mut reports = 0;
        let took = rt()
            .block_on(wait_for(&target, Duration::from_secs(5), &mut |_| {
                reports += 1
            }))
            .unwrap();
        assert_eq!(reports, 0);
        assert!(took < Duration::from_secs(1), "{took:?}");
    }

    #[test]
    fn timeout_reports_first_failure_and_names_the_last_error() {
        let target = missing_file();
        let mut reports = Vec::new();
        let err = rt()
            .block_on(wait_for(&target, Duration::from_millis(400), &mut |p| {
                reports.push(p.clone())
            }))
            .unwrap_err();
        // 100 + 200 ms of backoff fit in 400 ms: at least 3 attempts, but
        // only the first is reported (the next report is due after 5 s).
        assert_eq!(reports.len(), 1, "{reports:?}");
        assert_eq!(reports[0].attempt, 1);
        assert!(reports[0].last_error.contains("does not exist"));
        assert!(err.contains(&target.to_string()), "{err}");
        assert!(err.contains("did not answer within "), "{err}");
        assert!(err.contains("attempts); last error: "), "{err}");
        assert!(err.contains("does not exist"), "{err}");
    }

    #[test]
    fn zero_timeout_makes_one_attempt() {
        let mut attempts = Vec::new();
        let err = rt()
            .block_on(wait_for(&missing_file(), Duration::ZERO, &mut |p| {
                attempts.push(p.attempt)
            }))
            .unwrap_err();
        assert_eq!(attempts, [1]);
        assert!(err.contains("(1 attempt)"), "{err}");
    }

    #[test]
    fn huge_timeout_does_not_overflow() {
        let target = Target::File(std::env::temp_dir());
        rt().block_on(wait_for(&target, Duration::MAX, &mut |_| {}))
            .unwrap();
    }
}
