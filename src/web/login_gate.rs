//! Who may have a password checked now. A login is admitted in three steps, each
//! before any work: a client that must wait is answered at once; then it takes one of a
//! few slots for password checks (argon2 costs a blocking thread and 19 MiB each, so a
//! burst of logins cannot exhaust either: beyond the slots, 429 at once); then the
//! attempt is counted against its keys as a failure before the check, atomically, so
//! attempts arriving together cannot all pass a limit.
//!
//! The keys keep a guesser from being turned against anyone else:
//! - a device that logged into the account before (its `rl_device` cookie) is counted
//!   alone, so the owner's own browser is never held up by someone else's guessing;
//! - any other client is counted per account *and address*, per address, and per
//!   account in total. Addresses come from `client` (trusted proxies only), so one
//!   address never waits for another's failures, and the account's total only delays,
//!   briefly, clients it has never seen.

use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

use super::throttle::{Policy, Throttle, ACCOUNT_FROM_CLIENT, ACCOUNT_TOTAL, ADDRESS};

/// Who is trying: the client's address (as `client::throttle_key` gives it) and the
/// known device it proved, if any.
pub struct Client {
    pub address: String,
    pub device: Option<i64>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Every check slot is taken: try again in a moment (not counted).
    Busy,
    /// The client, the address or the account must wait this long.
    Wait(Duration),
}

pub struct LoginGate {
    throttle: Throttle,
    checks: Semaphore,
}

/// Two checks per core: enough to keep the cores busy, at 19 MiB each.
pub fn default_slots() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    (2 * cores).clamp(2, 32)
}

/// A login allowed to have its password checked; holds its check slot until dropped.
pub struct Admitted<'a> {
    gate: &'a LoginGate,
    /// Its keys, this client's own first.
    keys: Vec<(String, Policy)>,
    _slot: SemaphorePermit<'a>,
}

impl LoginGate {
    /// A gate with `slots` concurrent password checks.
    pub fn new(slots: usize) -> Self {
        LoginGate { throttle: Throttle::default(), checks: Semaphore::new(slots) }
    }

    pub fn admit(&self, account: &str, client: &Client) -> Result<Admitted<'_>, Refused> {
        let keys = keys(account, client);
        let borrowed: Vec<(&str, Policy)> = keys.iter().map(|(k, p)| (k.as_str(), *p)).collect();
        // A waiting client never takes a slot from others.
        if let Some(wait) = borrowed.iter().filter_map(|(k, _)| self.throttle.waiting(k)).max() {
            return Err(Refused::Wait(wait));
        }
        let slot = self.checks.try_acquire().map_err(|_| Refused::Busy)?;
        self.throttle.attempt(&borrowed).map_err(Refused::Wait)?;
        Ok(Admitted { gate: self, keys, _slot: slot })
    }
}

impl Admitted<'_> {
    /// The password was right: this client's failures on the account are forgotten,
    /// and this attempt is taken back from the address's and the account's totals,
    /// whose other failures stay counted however often the owner logs in.
    pub fn succeeded(self) {
        let (own, totals) = self.keys.split_first().expect("an attempt has its client's key");
        self.gate.throttle.clear(&own.0);
        for (key, policy) in totals {
            self.gate.throttle.forgive(key, *policy);
        }
    }
}

/// The keys an attempt counts against, this client's own first. The separator cannot
/// be typed into a form.
fn keys(account: &str, client: &Client) -> Vec<(String, Policy)> {
    match client.device {
        Some(device) => vec![(format!("device\u{1f}{account}\u{1f}{device}"), ACCOUNT_FROM_CLIENT)],
        None => vec![
            (format!("client\u{1f}{account}\u{1f}{}", client.address), ACCOUNT_FROM_CLIENT),
            (format!("address\u{1f}{}", client.address), ADDRESS),
            (format!("account\u{1f}{account}"), ACCOUNT_TOTAL),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(address: &str) -> Client {
        Client { address: address.into(), device: None }
    }

    fn guess(gate: &LoginGate, account: &str, client: &Client) -> Result<(), Refused> {
        gate.admit(account, client).map(drop)
    }

    #[test]
    fn a_guesser_waits_but_the_owner_elsewhere_does_not() {
        let gate = LoginGate::new(4);
        let attacker = from("203.0.113.7");
        for _ in 0..ACCOUNT_FROM_CLIENT.free {
            assert_eq!(guess(&gate, "admin", &attacker), Ok(()));
        }
        assert!(matches!(guess(&gate, "admin", &attacker), Err(Refused::Wait(_))));
        assert_eq!(guess(&gate, "admin", &from("198.51.100.2")), Ok(()), "another address");
        assert_eq!(guess(&gate, "kim", &attacker), Ok(()), "another account from the same address");
    }

    #[test]
    fn the_account_total_delays_only_clients_it_has_not_seen() {
        let gate = LoginGate::new(4);
        for n in 0..ACCOUNT_TOTAL.free {
            assert_eq!(guess(&gate, "admin", &from(&format!("10.0.{}.{}", n / 200, n % 200))), Ok(()));
        }
        let Err(Refused::Wait(wait)) = guess(&gate, "admin", &from("198.51.100.2")) else {
            panic!("a new client waits once the account's total is reached");
        };
        assert!(wait <= ACCOUNT_TOTAL.max_delay, "briefly: {wait:?}");
        let owner = Client { address: "198.51.100.2".into(), device: Some(7) };
        assert_eq!(guess(&gate, "admin", &owner), Ok(()), "the owner's known device passes");
    }

    #[test]
    fn one_address_failing_on_many_accounts_waits_alone() {
        let gate = LoginGate::new(4);
        let scanner = from("203.0.113.7");
        for n in 0..ADDRESS.free {
            assert_eq!(guess(&gate, &format!("user{n}"), &scanner), Ok(()));
        }
        assert!(matches!(guess(&gate, "someone", &scanner), Err(Refused::Wait(_))));
        assert_eq!(guess(&gate, "someone", &from("198.51.100.2")), Ok(()));
    }

    #[test]
    fn a_success_is_taken_back_from_the_totals() {
        let gate = LoginGate::new(4);
        let office = from("10.0.0.1");
        for n in 0..ADDRESS.free - 1 {
            assert_eq!(guess(&gate, &format!("typo{n}"), &office), Ok(()));
        }
        gate.admit("owner", &office).unwrap().succeeded();
        assert_eq!(guess(&gate, "someone", &office), Ok(()), "19 failures, not 20");
        assert!(matches!(guess(&gate, "someone else", &office), Err(Refused::Wait(_))), "now 20");
    }

    #[test]
    fn checks_beyond_the_slots_are_refused_at_once_and_not_counted() {
        let gate = LoginGate::new(2);
        let (a, b) = (from("10.0.0.1"), from("10.0.0.2"));
        let first = gate.admit("kim", &a).unwrap();
        let _second = gate.admit("lee", &b).unwrap();
        assert!(matches!(gate.admit("park", &a), Err(Refused::Busy)));
        first.succeeded();
        assert!(gate.admit("park", &a).is_ok(), "a slot came back");
        // "kim" from a: its success cleared it; "park" was counted only once admitted.
        assert_eq!(gate.throttle.waiting("client\u{1f}park\u{1f}10.0.0.1"), None);
    }
}
