//! Who is calling, and may they: the client address behind trusted
//! proxies, and per-source rate limits.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use http::HeaderMap;
use ipnet::IpNet;

use crate::rules::model::RateLimit;

/// The client's address. `X-Forwarded-For` is believed only when the peer
/// is a trusted proxy, and then read from the right, skipping trusted hops,
/// so a client cannot choose its own address by sending the header.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|hop| hop.trim().parse().ok())
        .collect();
    hops.into_iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .unwrap_or(peer)
}

/// One limiter per source, rebuilt when a reload changes the source's limit.
#[derive(Default)]
pub struct RateLimiters {
    by_source: Mutex<HashMap<String, (RateLimit, Arc<DefaultDirectRateLimiter>)>>,
}

impl RateLimiters {
    /// `Ok` if the request may go on, else how long until it would.
    pub fn check(&self, source: &str, limit: RateLimit) -> Result<(), Duration> {
        let limiter = {
            let mut map = self
                .by_source
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match map.get(source) {
                Some((l, limiter)) if *l == limit => limiter.clone(),
                _ => {
                    let limiter = Arc::new(RateLimiter::direct(quota(limit)));
                    map.insert(source.to_string(), (limit, limiter.clone()));
                    limiter
                }
            }
        };
        limiter
            .check()
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// `count` per `per`, with a burst of twice the count.
fn quota(limit: RateLimit) -> Quota {
    let count = limit.count.max(1);
    let period = (limit.per / count).max(Duration::from_nanos(1));
    let burst = NonZeroU32::new(count.saturating_mul(2)).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", xff.parse().unwrap());
        h
    }

    #[test]
    fn forwarded_for_is_ignored_from_untrusted_peers() {
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(client_ip(peer, &headers("10.1.1.1"), &[]), peer);
    }

    #[test]
    fn forwarded_for_is_read_from_the_right_behind_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        // The client forged the first entry; the proxy appended the real one.
        let got = client_ip(peer, &headers("1.2.3.4, 198.51.100.7, 10.0.0.3"), &trusted);
        assert_eq!(got, "198.51.100.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_rate_limit_allows_its_burst_then_asks_to_wait() {
        let limiters = RateLimiters::default();
        let limit = RateLimit {
            count: 2,
            per: Duration::from_secs(60),
        };
        for _ in 0..4 {
            assert!(limiters.check("s", limit).is_ok());
        }
        let wait = limiters.check("s", limit).unwrap_err();
        assert!(wait > Duration::from_secs(1), "{wait:?}");
    }
}
