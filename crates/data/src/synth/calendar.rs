//! Interaction times: drawing them, and writing the three mutually consistent time columns.
//!
//! A time is kept as Unix milliseconds. The `time` (Beijing wall clock, UTC+8), `date` and `timestamp`
//! columns are all written from that one integer, with the per-day strings computed once, because
//! per-row calendar arithmetic would dominate the cost of writing 17 million rows.

use chrono::NaiveDate;
use rand::Rng;

use super::writer::push_i64;

/// Beijing time is UTC+8 all year (no daylight saving).
const BEIJING_OFFSET_MS: i64 = 8 * 3_600_000;
const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

/// The days of the collection period and the hour-of-day profile.
#[derive(Debug, Clone)]
pub(crate) struct Calendar {
    /// Unix ms of 00:00 Beijing time on the first day.
    first_midnight_ms: i64,
    /// Per day: `YYYY-MM-DD ` (with the trailing space) and `YYYYMMDD`.
    days: Vec<([u8; 11], [u8; 8])>,
    /// Cumulative hour weights, last entry = total.
    hour_cdf: [f64; 24],
}

impl Calendar {
    /// `start` is `YYYY-MM-DD`; `hour_weights` has 24 non-negative entries with a positive sum (checked
    /// by the config validation, so a bad value here is a programming error).
    pub(crate) fn new(start: NaiveDate, n_days: u32, hour_weights: &[f64]) -> Self {
        let midnight_utc = start.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc().timestamp_millis();
        let days = (0..n_days)
            .map(|d| {
                let date = start + chrono::Days::new(u64::from(d));
                let mut dash = [0u8; 11];
                dash.copy_from_slice(date.format("%Y-%m-%d ").to_string().as_bytes());
                let mut compact = [0u8; 8];
                compact.copy_from_slice(date.format("%Y%m%d").to_string().as_bytes());
                (dash, compact)
            })
            .collect();
        let mut hour_cdf = [0.0; 24];
        let mut total = 0.0;
        for (h, w) in hour_weights.iter().enumerate().take(24) {
            total += w;
            hour_cdf[h] = total;
        }
        Calendar { first_midnight_ms: midnight_utc - BEIJING_OFFSET_MS, days, hour_cdf }
    }

    /// A time: a uniform day, an hour ∝ the hour weights, a uniform millisecond within the hour.
    pub(crate) fn sample_ms<R: Rng>(&self, rng: &mut R) -> i64 {
        let day = rng.gen_range(0..self.days.len()) as i64;
        let x = rng.gen::<f64>() * self.hour_cdf[23];
        let hour = self.hour_cdf.iter().position(|&c| x < c).unwrap_or(23) as i64;
        let ms = rng.gen_range(0..HOUR_MS);
        self.first_midnight_ms + day * DAY_MS + hour * HOUR_MS + ms
    }

    /// Appends `time,date,timestamp` for a time drawn by [`Calendar::sample_ms`], e.g.
    /// `2020-07-05 00:08:23.438,20200705,1593878903.438`.
    pub(crate) fn push_columns(&self, buf: &mut Vec<u8>, unix_ms: i64) {
        let since = unix_ms - self.first_midnight_ms;
        let (day, in_day) = (since.div_euclid(DAY_MS), since.rem_euclid(DAY_MS));
        let (dash, compact) = &self.days[day as usize];
        buf.extend_from_slice(dash);
        let (h, m, s, ms) = (in_day / HOUR_MS, in_day / 60_000 % 60, in_day / 1000 % 60, in_day % 1000);
        push2(buf, h);
        buf.push(b':');
        push2(buf, m);
        buf.push(b':');
        push2(buf, s);
        buf.push(b'.');
        push3(buf, ms);
        buf.push(b',');
        buf.extend_from_slice(compact);
        buf.push(b',');
        push_i64(buf, unix_ms.div_euclid(1000));
        buf.push(b'.');
        push3(buf, unix_ms.rem_euclid(1000));
    }
}

fn push2(buf: &mut Vec<u8>, n: i64) {
    buf.extend_from_slice(&[b'0' + (n / 10) as u8, b'0' + (n % 10) as u8]);
}

fn push3(buf: &mut Vec<u8>, n: i64) {
    buf.extend_from_slice(&[b'0' + (n / 100) as u8, b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn calendar() -> Calendar {
        let start = NaiveDate::from_ymd_opt(2020, 7, 5).unwrap();
        Calendar::new(start, 63, &[1.0; 24])
    }

    #[test]
    fn the_readme_example_row_is_reproduced() {
        let mut b = Vec::new();
        calendar().push_columns(&mut b, 1_593_878_903_438);
        assert_eq!(String::from_utf8(b).unwrap(), "2020-07-05 00:08:23.438,20200705,1593878903.438");
    }

    #[test]
    fn sampled_times_stay_in_the_period() {
        let cal = calendar();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let first = cal.first_midnight_ms;
        for _ in 0..10_000 {
            let t = cal.sample_ms(&mut rng);
            assert!(t >= first && t < first + 63 * DAY_MS);
        }
        let mut b = Vec::new();
        cal.push_columns(&mut b, first + 63 * DAY_MS - 1);
        assert!(b.starts_with(b"2020-09-05 23:59:59.999,20200905,"));
    }
}
