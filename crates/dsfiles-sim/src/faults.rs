//! The fault plan: what goes wrong, for which requests, and how many times.

use serde::{Deserialize, Serialize};

/// A set of fault rules, checked in order. Replaceable at run time with
/// [`SimHandle::set_faults`](crate::SimHandle::set_faults) or `POST /__sim/faults`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultPlan {
    #[serde(default)]
    pub rules: Vec<FaultRule>,
}

impl FaultPlan {
    pub fn new() -> FaultPlan {
        FaultPlan::default()
    }

    /// Adds a rule (builder style).
    pub fn with(mut self, fault: Fault, target: Target, times: Option<u32>) -> FaultPlan {
        self.rules.push(FaultRule {
            fault,
            target,
            times,
        });
        self
    }
}

/// One fault, the requests it targets, and how many times it may still fire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRule {
    pub fault: Fault,
    #[serde(default)]
    pub target: Target,
    /// How many more times the rule fires; `None` = every time it matches.
    /// Ignored by [`Fault::WrongChecksum`], which holds while the rule is in the plan.
    #[serde(default = "default_times")]
    pub times: Option<u32>,
}

fn default_times() -> Option<u32> {
    Some(1)
}

/// What goes wrong. GraphQL faults apply to `POST /api/v2/graphql`; file faults to the
/// file host's downloads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// GraphQL: HTTP 429 with a text body and `RateLimit-Reset` (Unix seconds, now + `reset_in_secs`);
    /// also `Retry-After` when `retry_after` is set (other instances send it, DS does not).
    RateLimited {
        reset_in_secs: u64,
        #[serde(default)]
        retry_after: bool,
    },
    /// GraphQL: HTTP 429 whose `RateLimit-Reset` (and `Retry-After`, when set) carry these
    /// raw values, however absurd (`10000000000000000000`, `-1`, `soon`, a far HTTP date).
    /// A value that is not a valid header value is left out.
    HostileRateLimit {
        reset: String,
        #[serde(default)]
        retry_after: Option<String>,
    },
    /// GraphQL: the normal answer, preceded by whitespace so that the body is `bytes` long
    /// (still valid JSON); the padding is streamed, never held in memory.
    GiganticPage { bytes: u64 },
    /// GraphQL: HTTP 502 with an HTML body, as DS's reverse proxy sends.
    BadGateway,
    /// GraphQL: HTTP 503 with an HTML body.
    ServiceUnavailable,
    /// GraphQL: a `timeout` error on `dossiers` when the page size (`first`, capped at 100)
    /// is above `above_first`.
    GraphqlTimeout { above_first: u32 },
    /// GraphQL: the targeted dossier (or every k-th dossier node) resolves to `null` with an
    /// `invalid_null` error beside the data.
    InvalidNull,
    /// GraphQL: the response is delayed.
    SlowApi { delay_ms: u64 },
    /// File host: the download is delayed before the headers.
    SlowFile { delay_ms: u64 },
    /// File host: the connection is reset after half of the body.
    ResetMidBody,
    /// File host: `Content-Length` announces the full size but the body stops at half.
    TruncatedBody,
    /// File host: one byte of the body is flipped; with `varying`, differently on every try.
    Corrupt {
        #[serde(default)]
        varying: bool,
    },
    /// File host: the URL is answered as expired (401).
    ExpiredUrl,
    /// File host: every URL issued so far expires now (this request gets 401 too).
    ExpireAllUrls,
    /// GraphQL: the targeted file's `checksum` is wrong, over stable bytes (DS legacy).
    WrongChecksum,
    /// File host: the download answers 302 to `url`, wherever that is (a hostile storage).
    RedirectTo { url: String },
    /// File host: the body never ends (no `Content-Length`; bytes counted in
    /// [`Stats::bytes_served`](crate::Stats::bytes_served)).
    EndlessBody,
    /// File host: the body comes one byte every `interval_ms`.
    DripBody { interval_ms: u64 },
    /// File host: `Content-Length` and body are `extra` bytes longer than the file.
    LongerBody { extra: u64 },
}

/// Which requests a rule applies to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// Every matching request.
    #[default]
    Always,
    /// Every k-th request of the fault's kind (GraphQL calls, or file downloads), counted from 1.
    Every { every: u64 },
    /// Downloads (or the checksum) of one file, by [`ExpectedFile::id`](crate::ExpectedFile::id).
    File { file: u64 },
    /// One dossier, by number.
    Dossier { dossier: u64 },
}

impl Fault {
    pub(crate) fn scope(&self) -> Scope {
        match self {
            Fault::RateLimited { .. }
            | Fault::HostileRateLimit { .. }
            | Fault::GiganticPage { .. }
            | Fault::BadGateway
            | Fault::ServiceUnavailable
            | Fault::SlowApi { .. } => Scope::Request,
            Fault::GraphqlTimeout { .. } => Scope::Page,
            Fault::InvalidNull => Scope::DossierNode,
            Fault::WrongChecksum => Scope::Checksum,
            Fault::SlowFile { .. }
            | Fault::ResetMidBody
            | Fault::TruncatedBody
            | Fault::Corrupt { .. }
            | Fault::ExpiredUrl
            | Fault::ExpireAllUrls
            | Fault::RedirectTo { .. }
            | Fault::EndlessBody
            | Fault::DripBody { .. }
            | Fault::LongerBody { .. } => Scope::Download,
        }
    }
}

/// Where a fault is evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Before a GraphQL request is handled.
    Request,
    /// When a `dossiers` page is resolved.
    Page,
    /// When a dossier node is resolved.
    DossierNode,
    /// When a file's checksum is reported.
    Checksum,
    /// When the file host serves a download.
    Download,
}

/// What a matching event looks like, for target checks.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Subject {
    /// 1-based count of events of this scope (GraphQL requests, downloads, dossier nodes).
    pub(crate) seq: u64,
    pub(crate) file: Option<u64>,
    pub(crate) dossier: Option<u64>,
}

impl Target {
    fn matches(&self, subject: &Subject) -> bool {
        match *self {
            Target::Always => true,
            Target::Every { every } => every > 0 && subject.seq.is_multiple_of(every),
            Target::File { file } => subject.file == Some(file),
            Target::Dossier { dossier } => subject.dossier == Some(dossier),
        }
    }
}

/// The live plan, with its remaining counts.
#[derive(Debug, Default)]
pub(crate) struct FaultState {
    pub(crate) plan: FaultPlan,
    /// Download attempts per file, to vary corruption between tries.
    pub(crate) attempts: std::collections::HashMap<u64, u64>,
}

impl FaultState {
    /// Fires (and consumes) every rule of `scope` that matches `subject` and `accept`s.
    pub(crate) fn fire(
        &mut self,
        scope: Scope,
        subject: &Subject,
        mut accept: impl FnMut(&Fault) -> bool,
    ) -> Vec<Fault> {
        let mut fired = Vec::new();
        for rule in &mut self.plan.rules {
            if rule.fault.scope() != scope || rule.times == Some(0) {
                continue;
            }
            if !rule.target.matches(subject) || !accept(&rule.fault) {
                continue;
            }
            if let Some(times) = rule.times.as_mut() {
                *times -= 1;
            }
            fired.push(rule.fault.clone());
        }
        fired
    }

    /// Whether a stateless rule (wrong checksum) holds for `subject`.
    pub(crate) fn holds(&self, scope: Scope, subject: &Subject) -> bool {
        self.plan
            .rules
            .iter()
            .any(|rule| rule.fault.scope() == scope && rule.target.matches(subject))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_fire_a_bounded_number_of_times() {
        let plan = FaultPlan::new().with(Fault::BadGateway, Target::Every { every: 2 }, Some(2));
        let mut state = FaultState {
            plan,
            ..FaultState::default()
        };
        let fired: Vec<bool> = (1..=8)
            .map(|seq| {
                let subject = Subject {
                    seq,
                    ..Subject::default()
                };
                !state.fire(Scope::Request, &subject, |_| true).is_empty()
            })
            .collect();
        assert_eq!(
            fired,
            [false, true, false, true, false, false, false, false]
        );
    }

    #[test]
    fn plan_round_trips_through_json() {
        let json = r#"{"rules":[
            {"fault":{"kind":"rate_limited","reset_in_secs":2},"target":{"kind":"every","every":3},"times":null},
            {"fault":{"kind":"corrupt","varying":true},"target":{"kind":"file","file":4}},
            {"fault":{"kind":"graphql_timeout","above_first":50}},
            {"fault":{"kind":"hostile_rate_limit","reset":"10000000000000000000"}},
            {"fault":{"kind":"gigantic_page","bytes":1073741824}}
        ]}"#;
        let plan: FaultPlan = serde_json::from_str(json).unwrap();
        assert_eq!(plan.rules[0].times, None);
        assert_eq!(plan.rules[1].times, Some(1));
        assert_eq!(plan.rules[2].target, Target::Always);
        assert_eq!(plan.rules[1].fault, Fault::Corrupt { varying: true },);
        assert_eq!(
            plan.rules[3].fault,
            Fault::HostileRateLimit {
                reset: "10000000000000000000".to_owned(),
                retry_after: None
            }
        );
        assert_eq!(plan.rules[4].fault.scope(), Scope::Request);
        let back: FaultPlan = serde_json::from_value(serde_json::to_value(&plan).unwrap()).unwrap();
        assert_eq!(back, plan);
    }
}
