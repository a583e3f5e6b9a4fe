//! The login back-off (issue 13 item 7): failures per username, client address, network,
//! request_uri and device, with turns reserved before the password is checked.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use portcullis_core::random::{hash, random_bytes};
use portcullis_jose::{b64url, b64url_decode};

/// How long a device cookie is honoured (seconds).
pub const DEVICE_COOKIE_LIFETIME: i64 = 90 * 86_400;

/// Login failures, kept per username, per client address and per request_uri (issue 13 item
/// 7). After a few failures each further attempt on a key takes a turn of growing length (up to
/// 5 s). An attempt counts as a failure from the moment it is admitted until its password is
/// found correct, and turns are reserved before the password is checked, so parallel attempts
/// wait one after another instead of all at once. A browser with this user's device cookie skips
/// the username's turns (others' guesses cannot lock the user out of a browser they used
/// before). Bounded in size: when full, the oldest entries make room (never a reset of
/// everyone). Local to the node (ROADMAP 1: shared through the database later).
pub struct LoginFailures {
    map: std::sync::Mutex<std::collections::HashMap<String, Attempts>>,
    max_tracked: usize,
    /// A per-process key for log tags of usernames (issue 13 item 13).
    log_key: hmac::Key,
    /// Signs device cookies (stored, so they survive restarts and hold on every node).
    device_key: hmac::Key,
}

struct Attempts {
    failures: u32,
    /// Attempts admitted and not yet resolved: they count as failures meanwhile.
    in_flight: u32,
    /// Failures a key gets before attempts take turns.
    free: u32,
    last: Instant,
    /// When the next attempt's turn starts.
    next_turn: Instant,
}

/// An admitted login attempt. Until [`Attempt::succeeded`] it counts as a failure on each of its
/// keys, and so does an attempt dropped unresolved (the client went away while its password was
/// being checked). [`Attempt::busy`] (no check was made) counts as nothing.
pub struct Attempt<'a> {
    owner: &'a LoginFailures,
    keys: Vec<(String, u32)>,
    resolved: bool,
}

impl Attempt<'_> {
    pub fn failed(mut self) {
        self.resolved = true;
        self.owner.resolve(&self.keys, true);
    }

    /// A correct password clears the username's and the request's failures (not the
    /// address's or network's: one success must not hide a guessing run from there; nor a
    /// device's: a copied device cookie must not get its free guesses back whenever the real
    /// user signs in).
    pub fn succeeded(mut self) {
        self.resolved = true;
        self.owner.resolve(&self.keys, false);
        let mut map = self.owner.lock();
        for (k, _) in self
            .keys
            .iter()
            .filter(|(k, _)| k.starts_with("u:") || k.starts_with("r:"))
        {
            map.remove(k);
        }
    }
}

impl Attempt<'_> {
    /// No check was made: counts as nothing (a flood's own checked attempts already charge its
    /// addresses, and a busy answer must not push people sharing an address into back-off).
    pub fn busy(mut self) {
        self.resolved = true;
        self.owner.resolve(&self.keys, false);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.resolved {
            self.owner.resolve(&self.keys, true);
        }
    }
}

/// How long failures are remembered.
const FAILURE_MEMORY: Duration = Duration::from_secs(900);
/// The most entries tracked (each a short hashed key).
const MAX_TRACKED: usize = 10_000;
/// An attempt that would have to wait longer than this is refused at once (429), so that
/// waiting attempts cannot pile up.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// Failures before attempts take turns: per username and per request, and (several people may
/// share one address) per client address.
const FREE_PER_USER: u32 = 3;
const FREE_PER_ADDRESS: u32 = 10;
const FREE_PER_NETWORK: u32 = 30;

impl Default for LoginFailures {
    fn default() -> Self {
        Self::new(&random_bytes::<32>(), MAX_TRACKED)
    }
}

impl LoginFailures {
    pub fn new(device_secret: &[u8], max_tracked: usize) -> Self {
        Self {
            map: Default::default(),
            max_tracked: max_tracked.max(1),
            log_key: hmac::Key::new(hmac::HMAC_SHA256, &random_bytes::<32>()),
            device_key: hmac::Key::new(hmac::HMAC_SHA256, device_secret),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Attempts>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The keys of one attempt: client address (as the connection gate counts it: IPv4-mapped
    /// as IPv4, IPv6 by /64), request, and username, or instead of the username the device (a
    /// browser where this user signed in before) while that device has fewer than
    /// [`DEVICE_MAX_FAILURES`] failures: a stolen device cookie buys a few guesses, not a way
    /// around the username's back-off.
    pub fn keys(&self, username: &str, addr: IpAddr, request: &str, device: Option<&str>) -> Vec<(String, u32)> {
        let mut keys = vec![
            (format!("a:{}", crate::connections::address_key(addr)), FREE_PER_ADDRESS),
            (format!("r:{}", hash(request)), FREE_PER_USER),
        ];
        // one IPv6 subscriber commonly holds a /56 or a /48, i.e. hundreds of /64s: the
        // enclosing /48 is limited too
        if let IpAddr::V6(v6) = addr.to_canonical() {
            let net = std::net::Ipv6Addr::from(v6.to_bits() & !((1u128 << 80) - 1));
            keys.push((format!("n:{net}/48"), FREE_PER_NETWORK));
        }
        let device_key = device.map(|d| format!("d:{d}"));
        let trusted = device_key.as_ref().is_some_and(|k| {
            self.lock()
                .get(k)
                .is_none_or(|a| a.failures + a.in_flight < DEVICE_MAX_FAILURES)
        });
        match device_key {
            Some(k) if trusted => keys.push((k, FREE_PER_USER)),
            _ => keys.push((format!("u:{}", hash(&username.to_lowercase())), FREE_PER_USER)),
        }
        keys
    }

    /// A bounded, non-reversible tag of a username for the log: the same name gives the same
    /// tag within one process, so repeated failures can be followed without logging the name.
    pub fn tag(&self, username: &str) -> String {
        let t = hmac::sign(&self.log_key, username.as_bytes());
        t.as_ref()[..6].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A device cookie (OWASP "device cookies"): a random device id and the issue time, with a
    /// MAC binding both to the user. A new one is issued at every successful login.
    pub fn device_cookie(&self, username: &str, now: i64) -> String {
        let mut value = random_bytes::<16>().to_vec();
        value.extend_from_slice(&now.to_be_bytes());
        let tag = hmac::sign(&self.device_key, &device_message(username, &value));
        value.extend_from_slice(tag.as_ref());
        b64url(value)
    }

    /// The device id of a cookie issued to `username` within [`DEVICE_COOKIE_LIFETIME`].
    pub fn known_device(&self, cookie: &str, username: &str, now: i64) -> Option<String> {
        let raw = b64url_decode(cookie).ok()?;
        if raw.len() != 16 + 8 + 32 {
            return None;
        }
        let (value, tag) = raw.split_at(24);
        hmac::verify(&self.device_key, &device_message(username, value), tag).ok()?;
        let issued = i64::from_be_bytes(value[16..24].try_into().ok()?);
        if now < issued || now - issued > DEVICE_COOKIE_LIFETIME {
            return None;
        }
        Some(value[..16].iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Admits an attempt: reserves its turn on every key and counts it as in flight. Returns
    /// how long to wait before checking the password, or None when that would be longer than
    /// [`MAX_WAIT`].
    pub fn admit(&self, keys: Vec<(String, u32)>) -> Option<(Attempt<'_>, Duration)> {
        let now = Instant::now();
        let mut map = self.lock();
        let mut wait = Duration::ZERO;
        for (k, _) in &keys {
            if let Some(a) = map.get(k)
                && !turn(pending(a, now), a.free).is_zero()
            {
                wait = wait.max(a.next_turn.saturating_duration_since(now));
            }
        }
        if wait > MAX_WAIT {
            return None;
        }
        for (k, free) in &keys {
            if !map.contains_key(k) && map.len() >= self.max_tracked {
                evict_oldest(&mut map, self.max_tracked, now);
            }
            let a = map.entry(k.clone()).or_insert(Attempts {
                failures: 0,
                in_flight: 0,
                free: *free,
                last: now,
                next_turn: now,
            });
            if now.duration_since(a.last) > FAILURE_MEMORY {
                a.failures = 0;
            }
            let t = turn(a.failures + a.in_flight, a.free);
            if !t.is_zero() {
                a.next_turn = a.next_turn.max(now) + t;
            }
            a.in_flight = a.in_flight.saturating_add(1);
            a.last = now;
        }
        Some((
            Attempt {
                owner: self,
                keys,
                resolved: false,
            },
            wait,
        ))
    }

    pub fn resolve(&self, keys: &[(String, u32)], failed: bool) {
        let now = Instant::now();
        let mut map = self.lock();
        for (k, _) in keys {
            if let Some(a) = map.get_mut(k) {
                a.in_flight = a.in_flight.saturating_sub(1);
                if failed {
                    a.failures = a.failures.saturating_add(1);
                    a.last = now;
                }
            }
        }
    }
}

fn device_message(username: &str, value: &[u8]) -> Vec<u8> {
    let mut m = format!("device\n{}\n", username.to_lowercase()).into_bytes();
    m.extend_from_slice(value);
    m
}

/// Failures (and attempts in flight) a device may have before it is treated as unknown.
const DEVICE_MAX_FAILURES: u32 = 5;

/// Failures plus attempts in flight, for an entry not yet forgotten.
fn pending(a: &Attempts, now: Instant) -> u32 {
    let failures = if now.duration_since(a.last) > FAILURE_MEMORY {
        0
    } else {
        a.failures
    };
    failures + a.in_flight
}

/// The length of an attempt's turn after `failures` failures on a key that gets `free`.
fn turn(failures: u32, free: u32) -> Duration {
    if failures < free {
        Duration::ZERO
    } else {
        Duration::from_millis((250u64 << (failures - free).min(5)).min(5000))
    }
}

/// Makes room: forgets stale entries, and if that is not enough the oldest tenth (never one
/// with an attempt in flight).
fn evict_oldest(map: &mut std::collections::HashMap<String, Attempts>, max: usize, now: Instant) {
    map.retain(|_, a| a.in_flight > 0 || now.duration_since(a.last) < FAILURE_MEMORY);
    if map.len() < max {
        return;
    }
    // entries that hold no failure go first (a flood of successful or pending logins must not
    // push out anyone's back-off)
    map.retain(|_, a| a.in_flight > 0 || a.failures > 0);
    if map.len() < max {
        return;
    }
    let mut ages: Vec<(Instant, String)> = map
        .iter()
        .filter(|(_, a)| a.in_flight == 0)
        .map(|(k, a)| (a.last, k.clone()))
        .collect();
    if ages.is_empty() {
        return;
    }
    let n = (max / 10).max(1).min(ages.len());
    ages.select_nth_unstable_by_key(n - 1, |(t, _)| *t);
    for (_, k) in ages.into_iter().take(n) {
        map.remove(&k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn keys(f: &LoginFailures, user: &str, ip: &str, req: &str) -> Vec<(String, u32)> {
        f.keys(user, ip.parse().unwrap(), req, None)
    }

    /// Admits and resolves one attempt at once; returns its wait.
    fn attempt(f: &LoginFailures, k: &[(String, u32)], failed: bool) -> Option<Duration> {
        let (a, wait) = f.admit(k.to_vec())?;
        if failed {
            a.failed();
        } else {
            a.succeeded();
        }
        Some(wait)
    }

    /// Repeated failures make attempts take turns; a success resets the username's count.
    #[test]
    fn login_failures_back_off() {
        let f = LoginFailures::default();
        let k = keys(&f, "a", "192.0.2.1", "r1");
        for _ in 0..3 {
            assert_eq!(attempt(&f, &k, true), Some(Duration::ZERO));
        }
        // the fourth attempt reserves a turn; the fifth, made at once, waits for it
        assert_eq!(attempt(&f, &k, true), Some(Duration::ZERO));
        assert!(attempt(&f, &k, true).unwrap() > Duration::ZERO);
        let other = keys(&f, "b", "192.0.2.2", "r2");
        assert_eq!(
            attempt(&f, &other, true),
            Some(Duration::ZERO),
            "per username, address, request"
        );
        let (a, _) = f.admit(k.clone()).unwrap();
        a.succeeded();
        let fresh = keys(&f, "a", "192.0.2.3", "r3");
        assert_eq!(
            attempt(&f, &fresh, true),
            Some(Duration::ZERO),
            "a success resets the username"
        );
    }

    /// Issue 13 item 7 (and the review's follow-up): a burst of parallel guesses, none yet
    /// resolved, already takes turns (attempts in flight count as failures); past the longest
    /// wait they are refused outright.
    #[test]
    fn parallel_attempts_take_turns() {
        let f = LoginFailures::default();
        let k = keys(&f, "victim", "198.51.100.7", "r");
        let admitted: Vec<_> = (0..60).map(|_| f.admit(k.clone())).collect();
        let waits: Vec<Duration> = admitted.iter().flatten().map(|(_, w)| *w).collect();
        assert!(waits.iter().filter(|w| w.is_zero()).count() <= 4, "{waits:?}");
        assert!(waits.windows(2).skip(4).all(|w| w[1] > w[0]), "{waits:?}");
        assert!(waits.iter().all(|w| *w <= MAX_WAIT));
        assert!(admitted.iter().any(Option::is_none), "no refusal past the longest wait");
        drop(admitted);
        let map = f.lock();
        // abandoned, they count as failures (their checks may have run)
        assert!(map.values().all(|a| a.in_flight == 0 && a.failures > 0));
    }

    /// Review follow-up: IPv4 clients on a dual-stack listener arrive IPv4-mapped; each is its
    /// own address, not one shared "/64".
    #[test]
    fn mapped_ipv4_addresses_are_distinct() {
        let f = LoginFailures::default();
        let a = f.keys("u", "::ffff:192.0.2.1".parse().unwrap(), "r", None);
        let b = f.keys("u", "::ffff:192.0.2.2".parse().unwrap(), "r", None);
        assert_ne!(a[0], b[0]);
        assert_eq!(a[0], f.keys("u", "192.0.2.1".parse().unwrap(), "r", None)[0]);
    }

    /// Review follow-up: guesses at a username from elsewhere do not hold up that user on a
    /// browser where they signed in before (device cookie); a forged cookie does not count.
    #[test]
    fn known_devices_skip_the_username_queue() {
        let f = LoginFailures::default();
        for i in 0..40 {
            let k = keys(&f, "alice", &format!("203.0.113.{i}"), &format!("r{i}"));
            let _ = attempt(&f, &k, true);
        }
        let stranger = keys(&f, "alice", "192.0.2.50", "fresh");
        assert!(
            f.admit(stranger).is_none_or(|(_, w)| w > Duration::ZERO),
            "the name is throttled"
        );
        let now = 1_800_000_000;
        let cookie = f.device_cookie("Alice", now);
        let device = f.known_device(&cookie, "alice", now + 60).expect("a known device");
        assert_ne!(
            f.known_device(&f.device_cookie("alice", now), "alice", now),
            Some(device.clone()),
            "one id per device"
        );
        assert_eq!(f.known_device(&cookie, "bob", now), None);
        assert_eq!(f.known_device("AAAA", "alice", now), None);
        assert_eq!(
            f.known_device(&cookie, "alice", now + DEVICE_COOKIE_LIFETIME + 1),
            None,
            "expires"
        );
        let mine = f.keys("alice", "192.0.2.51".parse().unwrap(), "mine", Some(&device));
        assert_eq!(attempt(&f, &mine, false), Some(Duration::ZERO));
    }

    /// Second review: a copied device cookie buys a few guesses, then the device counts as
    /// unknown and the username's back-off applies again.
    #[test]
    fn a_device_with_failures_loses_its_pass() {
        let f = LoginFailures::default();
        let now = 1_800_000_000;
        let device = f.known_device(&f.device_cookie("alice", now), "alice", now).unwrap();
        for i in 0..DEVICE_MAX_FAILURES {
            let k = f.keys(
                "alice",
                format!("198.51.100.{i}").parse().unwrap(),
                &format!("r{i}"),
                Some(&device),
            );
            assert!(k.iter().any(|(k, _)| k.starts_with("d:")));
            let _ = attempt(&f, &k, true);
        }
        let k = f.keys("alice", "198.51.100.99".parse().unwrap(), "r99", Some(&device));
        assert!(k.iter().any(|(k, _)| k.starts_with("u:")), "{k:?}");
        assert!(!k.iter().any(|(k, _)| k.starts_with("d:")));
    }

    /// Third review: the real user signing in with the device does not give a copied cookie
    /// its free guesses back.
    #[test]
    fn a_success_does_not_reset_the_device() {
        let f = LoginFailures::default();
        let now = 1_800_000_000;
        let device = f.known_device(&f.device_cookie("alice", now), "alice", now).unwrap();
        let guess = |i: u32| {
            f.keys(
                "alice",
                format!("198.51.100.{i}").parse().unwrap(),
                &format!("g{i}"),
                Some(&device),
            )
        };
        for i in 0..DEVICE_MAX_FAILURES - 1 {
            let _ = attempt(&f, &guess(i), true);
        }
        let _ = attempt(
            &f,
            &f.keys("alice", "192.0.2.77".parse().unwrap(), "ok", Some(&device)),
            false,
        );
        let _ = attempt(&f, &guess(50), true);
        assert!(
            !guess(51).iter().any(|(k, _)| k.starts_with("d:")),
            "the device got its guesses back"
        );
    }

    /// Third review: the IPv6 /48 around an address is limited too (one subscriber may hold
    /// hundreds of /64s).
    #[test]
    fn ipv6_networks_are_limited_as_a_whole() {
        let f = LoginFailures::default();
        let a = f.keys("u", "2001:db8:1:1::1".parse().unwrap(), "r", None);
        let b = f.keys("u", "2001:db8:1:ff00::1".parse().unwrap(), "r", None);
        let net = |k: &[(String, u32)]| k.iter().find(|(k, _)| k.starts_with("n:")).cloned();
        assert_ne!(a[0], b[0], "different /64s");
        assert_eq!(net(&a), net(&b), "one /48");
        assert!(net(&f.keys("u", "192.0.2.1".parse().unwrap(), "r", None)).is_none());
    }

    /// Second review: an attempt abandoned while its password is checked counts as a failure;
    /// a busy answer counts as nothing.
    #[test]
    fn abandoned_attempts_count_and_busy_charges_the_address() {
        let f = LoginFailures::default();
        let k = keys(&f, "carol", "192.0.2.9", "rq");
        let (a, _) = f.admit(k.clone()).unwrap();
        drop(a);
        let (a, _) = f.admit(k.clone()).unwrap();
        a.busy();
        let map = f.lock();
        let failures = |prefix: &str| {
            map.iter()
                .find(|(key, _)| key.starts_with(prefix))
                .map(|(_, a)| a.failures)
        };
        assert_eq!(failures("u:"), Some(1));
        assert_eq!(failures("a:"), Some(1));
        assert!(map.values().all(|a| a.in_flight == 0));
    }

    /// Issue 13 item 7: a flood of failures for other names neither resets nor evicts the
    /// back-off of a recent victim wholesale: the oldest entries go first.
    #[test]
    fn a_flood_evicts_oldest_entries_not_everyone() {
        let f = LoginFailures::new(b"k", 100);
        let victim = keys(&f, "victim", "203.0.113.9", "rv");
        for _ in 0..5 {
            let _ = attempt(&f, &victim, true);
        }
        for i in 0..300 {
            let k = vec![(format!("u:flood{i}"), FREE_PER_USER)];
            let _ = attempt(&f, &k, true);
            if i % 20 == 0 {
                let _ = attempt(&f, &victim[2..], true);
            }
        }
        let map = f.lock();
        assert!(map.len() <= 100 && map.len() > 80, "{}", map.len());
        assert!(
            map.contains_key(&victim[2].0),
            "the victim's back-off survived the flood"
        );
    }

    /// Issue 13 item 13: the log gets a short tag, never the name as typed.
    #[test]
    fn usernames_are_logged_as_tags() {
        let f = LoginFailures::default();
        let typed = format!("{}correct horse battery staple", "x".repeat(10_000));
        let tag = f.tag(&typed);
        assert_eq!(tag.len(), 12);
        assert!(!typed.contains(&tag) && tag.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(tag, f.tag(&typed), "stable within the process");
        assert_ne!(tag, f.tag("alice"));
    }
}
