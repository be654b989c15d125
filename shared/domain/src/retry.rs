//! The retry schedule: how long to wait before each retry of a failed delivery (DESIGN §3).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::Rng;

/// The default delays before retries 1..=7, after the first, immediate attempt.
pub const DEFAULT_RETRY_SCHEDULE: &str = "5s,5m,30m,2h,5h,10h,10h";
/// Random spread applied to each delay: ±20 %.
pub const JITTER_FRACTION: f64 = 0.2;
/// The least we wait after a 429 or a timeout: the merchant is overloaded.
pub const OVERLOAD_FLOOR: Duration = Duration::from_secs(60);
/// The longest single delay we accept in a schedule.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(24 * 3600);
/// The most retries a schedule may hold.
pub const MAX_RETRIES: usize = 50;

/// Delays before each retry; attempt 1 is immediate, attempt `n + 1` waits `delays[n - 1]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
}

/// Why a schedule string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetryScheduleError {
    /// An entry is not a number followed by `ms`, `s`, `m` or `h`.
    #[error("retry delay {0:?} is not a number followed by ms, s, m or h (e.g. 5s,5m,30m,2h)")]
    BadDelay(String),
    /// An entry is zero or longer than [`MAX_RETRY_DELAY`].
    #[error("retry delay {0:?} must be more than 0 and at most 24h")]
    OutOfRange(String),
    /// More than [`MAX_RETRIES`] entries.
    #[error("a retry schedule holds at most 50 delays, this one has {0}")]
    TooMany(usize),
}

/// Why an attempt failed, as far as the retry delay cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The merchant answered 429 Too Many Requests.
    TooManyRequests,
    /// The merchant did not answer in time.
    Timeout,
    /// Any other failure.
    Other,
}

impl RetrySchedule {
    /// A schedule from explicit delays (at least none, at most [`MAX_RETRIES`]).
    pub fn new(delays: Vec<Duration>) -> Result<Self, RetryScheduleError> {
        if delays.len() > MAX_RETRIES {
            return Err(RetryScheduleError::TooMany(delays.len()));
        }
        if let Some(bad) = delays.iter().find(|d| d.is_zero() || **d > MAX_RETRY_DELAY) {
            return Err(RetryScheduleError::OutOfRange(format_duration(*bad)));
        }
        Ok(Self { delays })
    }

    /// The total number of attempts: the first one plus one per delay.
    pub fn max_attempts(&self) -> u32 {
        self.delays.len() as u32 + 1
    }

    /// The delays, in order.
    pub fn delays(&self) -> &[Duration] {
        &self.delays
    }

    /// The un-jittered delay before `attempt` (1-based); `None` for the first attempt and
    /// past the end of the schedule.
    pub fn base_delay_before(&self, attempt: u32) -> Option<Duration> {
        let index = usize::try_from(attempt.checked_sub(2)?).ok()?;
        self.delays.get(index).copied()
    }

    /// How long to wait before `next_attempt` after a failure, or `None` when the schedule
    /// is exhausted.
    ///
    /// Without Retry-After the base delay is spread by ±20 %. A Retry-After is honoured but
    /// clamped between the base delay and twice it; after a 429 or a timeout we wait at
    /// least [`OVERLOAD_FLOOR`].
    pub fn delay_before(
        &self,
        next_attempt: u32,
        failure: FailureKind,
        retry_after: Option<Duration>,
        rng: &mut impl Rng,
    ) -> Option<Duration> {
        let base = self.base_delay_before(next_attempt)?;
        let delay = match retry_after {
            Some(asked) => asked.clamp(base, base * 2),
            None => base.mul_f64(1.0 + rng.random_range(-JITTER_FRACTION..=JITTER_FRACTION)),
        };
        Some(match failure {
            FailureKind::TooManyRequests | FailureKind::Timeout => delay.max(OVERLOAD_FLOOR),
            FailureKind::Other => delay,
        })
    }
}

impl Default for RetrySchedule {
    fn default() -> Self {
        DEFAULT_RETRY_SCHEDULE
            .parse()
            .expect("the default retry schedule parses")
    }
}

impl FromStr for RetrySchedule {
    type Err = RetryScheduleError;

    /// Parses `5s,5m,30m,2h`: comma-separated delays in `ms`, `s`, `m` or `h`; an empty
    /// string means no retries.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() {
            return Self::new(Vec::new());
        }
        let delays = text.split(',').map(parse_delay).collect::<Result<Vec<_>, _>>()?;
        Self::new(delays)
    }
}

impl fmt::Display for RetrySchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.delays.iter().map(|d| format_duration(*d)).collect();
        f.write_str(&parts.join(","))
    }
}

fn parse_delay(entry: &str) -> Result<Duration, RetryScheduleError> {
    let entry = entry.trim();
    let bad = || RetryScheduleError::BadDelay(entry.to_owned());
    let split = entry.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = entry.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let millis_per_unit = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(bad()),
    };
    let millis = number
        .checked_mul(millis_per_unit)
        .ok_or_else(|| RetryScheduleError::OutOfRange(entry.into()))?;
    let delay = Duration::from_millis(millis);
    if delay.is_zero() || delay > MAX_RETRY_DELAY {
        return Err(RetryScheduleError::OutOfRange(entry.into()));
    }
    Ok(delay)
}

fn format_duration(d: Duration) -> String {
    let millis = d.as_millis();
    match millis {
        m if m % 3_600_000 == 0 => format!("{}h", m / 3_600_000),
        m if m % 60_000 == 0 => format!("{}m", m / 60_000),
        m if m % 1_000 == 0 => format!("{}s", m / 1_000),
        m => format!("{m}ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn parses_valid_schedules() {
        let cases: &[(&str, &[Duration])] = &[
            (
                "5s,5m,30m,2h,5h,10h,10h",
                &[
                    SEC * 5,
                    SEC * 300,
                    SEC * 1800,
                    SEC * 7200,
                    SEC * 18000,
                    SEC * 36000,
                    SEC * 36000,
                ],
            ),
            ("1s,1s,1s", &[SEC, SEC, SEC]),
            (" 250ms , 2s ", &[Duration::from_millis(250), SEC * 2]),
            ("24h", &[SEC * 86400]),
            ("", &[]),
        ];
        for (text, expected) in cases {
            let schedule: RetrySchedule = text.parse().unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(schedule.delays(), *expected, "{text:?}");
            assert_eq!(schedule.max_attempts() as usize, expected.len() + 1);
        }
    }

    #[test]
    fn default_is_the_design_schedule() {
        let schedule = RetrySchedule::default();
        assert_eq!(schedule.to_string(), "5s,5m,30m,2h,5h,10h,10h");
        assert_eq!(schedule.max_attempts(), 8);
    }

    #[test]
    fn rejects_garbage_with_a_clear_error() {
        let cases = [
            ("5", RetryScheduleError::BadDelay("5".into())),
            ("s", RetryScheduleError::BadDelay("s".into())),
            ("5x", RetryScheduleError::BadDelay("5x".into())),
            ("5s,,5m", RetryScheduleError::BadDelay("".into())),
            ("-5s", RetryScheduleError::BadDelay("-5s".into())),
            ("1.5s", RetryScheduleError::BadDelay("1.5s".into())),
            ("5 s", RetryScheduleError::BadDelay("5 s".into())),
            ("0s", RetryScheduleError::OutOfRange("0s".into())),
            ("25h", RetryScheduleError::OutOfRange("25h".into())),
            (
                "99999999999999999999h",
                RetryScheduleError::BadDelay("99999999999999999999h".into()),
            ),
            (
                "9999999999999999h",
                RetryScheduleError::OutOfRange("9999999999999999h".into()),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(text.parse::<RetrySchedule>(), Err(expected), "{text:?}");
        }
        let too_many = vec!["1s"; 51].join(",");
        assert_eq!(too_many.parse::<RetrySchedule>(), Err(RetryScheduleError::TooMany(51)));
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let schedule = RetrySchedule::default();
        let mut rng = StdRng::seed_from_u64(7);
        for attempt in 2..=8 {
            let base = schedule.base_delay_before(attempt).unwrap();
            let (mut low, mut high) = (base, base);
            for _ in 0..2_000 {
                let d = schedule
                    .delay_before(attempt, FailureKind::Other, None, &mut rng)
                    .unwrap();
                assert!(
                    d >= base.mul_f64(0.8) && d <= base.mul_f64(1.2),
                    "attempt {attempt}: {d:?}"
                );
                low = low.min(d);
                high = high.max(d);
            }
            // The spread is real: both halves of the band are reached.
            assert!(low < base.mul_f64(0.9) && high > base.mul_f64(1.1), "attempt {attempt}");
        }
    }

    #[test]
    fn no_delay_for_the_first_attempt_or_past_the_end() {
        let schedule: RetrySchedule = "1s,2s".parse().unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(schedule.delay_before(1, FailureKind::Other, None, &mut rng), None);
        assert!(schedule.delay_before(3, FailureKind::Other, None, &mut rng).is_some());
        assert_eq!(schedule.delay_before(4, FailureKind::Other, None, &mut rng), None);
        assert_eq!(schedule.delay_before(0, FailureKind::Other, None, &mut rng), None);
    }

    #[test]
    fn retry_after_is_clamped_between_base_and_twice_base() {
        let schedule: RetrySchedule = "5m,30m".parse().unwrap();
        let mut rng = StdRng::seed_from_u64(3);
        let cases = [
            // (next attempt, Retry-After, expected)
            (2, SEC, SEC * 300),
            (2, SEC * 400, SEC * 400),
            (2, SEC * 9000, SEC * 600),
            (3, SEC * 10, SEC * 1800),
            (3, SEC * 3000, SEC * 3000),
            (3, SEC * 99999, SEC * 3600),
        ];
        for (attempt, asked, expected) in cases {
            let got = schedule.delay_before(attempt, FailureKind::Other, Some(asked), &mut rng);
            assert_eq!(got, Some(expected), "attempt {attempt}, Retry-After {asked:?}");
        }
    }

    #[test]
    fn overload_waits_at_least_a_minute() {
        let schedule: RetrySchedule = "1s,10m".parse().unwrap();
        let mut rng = StdRng::seed_from_u64(5);
        for failure in [FailureKind::TooManyRequests, FailureKind::Timeout] {
            assert_eq!(schedule.delay_before(2, failure, None, &mut rng), Some(OVERLOAD_FLOOR));
            assert_eq!(
                schedule.delay_before(2, failure, Some(SEC * 2), &mut rng),
                Some(OVERLOAD_FLOOR)
            );
            let long = schedule.delay_before(3, failure, None, &mut rng).unwrap();
            assert!(long >= SEC * 480, "{failure:?}: {long:?}");
        }
        assert_eq!(
            schedule.delay_before(2, FailureKind::Other, Some(SEC), &mut rng),
            Some(SEC)
        );
    }
}
