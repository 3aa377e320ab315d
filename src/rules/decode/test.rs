//! Decoding `tests:` entries: a delivery (inline or from a file) and the
//! rules it should match and the step fields it should render.

use super::Decoder;
use crate::rules::model::{RuleTest, SimulatedFailure};
use crate::rules::node::{Kind, Node, key_text};

pub(crate) const TEST_KEYS: &[&str] = &[
    "name",
    "source",
    "event",
    "headers",
    "query",
    "payload",
    "payload_file",
    "failure",
    "expect",
];
/// The keys of a test's `failure:` (a simulated failure, for rendering
/// the matched rules' `on_failure` steps).
pub(crate) const FAILURE_KEYS: &[&str] = &["step", "error", "attempts", "count"];
/// The keys of a test's `expect:`.
pub(crate) const EXPECT_KEYS: &[&str] = &["matched", "render", "rejected"];

impl Decoder<'_> {
    pub fn rule_test(&mut self, node: &Node) -> Option<RuleTest> {
        let loc = self.loc(node);
        let mut f = self.map(
            node,
            "a test (a mapping with name, source, payload, expect)",
        )?;
        let name = f
            .require(self, "name", "a test")
            .and_then(|n| self.raw_string(n));
        let what = match &name {
            Some(n) => format!("test {n:?}"),
            None => "a test".to_string(),
        };
        let source = f
            .require(self, "source", &what)
            .and_then(|n| self.string(n));
        let event = match f.get("event") {
            Some(n) => self.string(n).map(Some),
            None => Some(None),
        };
        let headers = self.string_pairs(f.get("headers"));
        let query = self.string_pairs(f.get("query"));
        let body = match (f.get("payload"), f.get("payload_file")) {
            (Some(p), None) => match &p.kind {
                // A string payload is sent as-is (form bodies, raw text).
                Kind::String(s) => Some(s.clone().into_bytes()),
                _ => self.json_value(p).and_then(|v| serde_json::to_vec(&v).ok()),
            },
            (None, Some(p)) => {
                let rel = self.string(p)?;
                let path = self.dir.join(&rel);
                match std::fs::read(&path) {
                    Ok(bytes) => Some(bytes),
                    // Not an error of the rule set: `serve` needs no
                    // test files; `check` and `test` fail on it.
                    Err(e) => {
                        let loc = self.loc(p);
                        self.test_problems.push(super::Diagnostic {
                            loc,
                            severity: super::Severity::Error,
                            message: format!(
                                "{what}: cannot read payload_file {}: {e}",
                                path.display()
                            ),
                        });
                        None
                    }
                }
            }
            (None, None) => Some(Vec::new()),
            (Some(_), Some(_)) => {
                self.error(
                    node,
                    format!("{what} has both `payload` and `payload_file`; keep one"),
                );
                None
            }
        };
        let failure = match f.get("failure") {
            Some(n) => self.simulated_failure(n).map(Some),
            None => Some(None),
        };
        let (expect_matched, expect_render, expect_rejected) = match f.get("expect") {
            Some(n) => self.expectations(n)?,
            None => {
                self.error(
                    node,
                    format!("{what} has no `expect:`, so it could never fail"),
                );
                return None;
            }
        };
        f.finish(self, &what, TEST_KEYS);
        Some(RuleTest {
            name: name?,
            loc,
            source: source?,
            event: event?,
            headers: headers?,
            query: query?,
            body: body?,
            expect_matched,
            expect_render,
            expect_rejected,
            failure: failure?,
        })
    }

    /// `failure: { step, error, attempts, count }`, each optional.
    fn simulated_failure(&mut self, node: &Node) -> Option<SimulatedFailure> {
        let mut f = self.map(
            node,
            "`failure` (a mapping with step, error, attempts, count)",
        )?;
        let mut text = |dec: &mut Self, key: &str| match f.get(key) {
            Some(n) => dec.raw_string(n),
            None => Some(String::new()),
        };
        let step = text(self, "step");
        let error = text(self, "error");
        let attempts = f.get("attempts").map_or(Some(1), |n| self.u32(n));
        let count = f.get("count").map_or(Some(1), |n| self.u32(n));
        f.finish(self, "`failure`", FAILURE_KEYS);
        Some(SimulatedFailure {
            step: step?,
            error: error?,
            attempts: attempts?,
            count: count?,
        })
    }

    fn string_pairs(&mut self, node: Option<&Node>) -> Option<Vec<(String, String)>> {
        let Some(node) = node else {
            return Some(Vec::new());
        };
        let entries = self.string_map(node)?;
        let mut out = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            out.push((k, self.string(&v)?));
        }
        Some(out)
    }

    #[allow(clippy::type_complexity)]
    fn expectations(
        &mut self,
        node: &Node,
    ) -> Option<(
        Option<Vec<String>>,
        Vec<(String, serde_json::Value, crate::rules::node::Loc)>,
        Option<u16>,
    )> {
        let mut f = self.map(
            node,
            "`expect` (a mapping with matched and/or render, or rejected)",
        )?;
        let rejected = match f.get("rejected") {
            Some(n) => match self.u32(n) {
                Some(status @ (400 | 422)) => u16::try_from(status).ok().map(Some),
                Some(other) => {
                    self.error(
                        n,
                        format!("a test can expect `rejected: 422` (the source's schema refuses the payload) or `rejected: 400` (the body does not parse), not {other}"),
                    );
                    None
                }
                None => None,
            },
            None => Some(None),
        };
        let matched = match f.get("matched") {
            Some(n) => match &n.kind {
                Kind::Seq(_) => self.string_list(n).map(Some),
                _ => {
                    self.expected(n, "a list of rule names (`[]` for none)");
                    None
                }
            },
            None => Some(None),
        };
        let mut render = Vec::new();
        let mut ok = true;
        if let Some(n) = f.get("render") {
            match &n.kind {
                Kind::Map(entries) => {
                    for (k, v) in entries {
                        match self.json_value(v) {
                            Some(value) => render.push((key_text(k), value, self.loc(k))),
                            None => ok = false,
                        }
                    }
                }
                _ => {
                    self.expected(n, "a mapping of `rule.step.field` to expected values");
                    ok = false;
                }
            }
        }
        f.finish(self, "`expect`", EXPECT_KEYS);
        let (matched, rejected) = (matched?, rejected?);
        if rejected.is_some() && (matched.is_some() || !render.is_empty()) {
            self.error(
                node,
                "`expect: { rejected: … }` stands alone: a refused delivery matches and renders nothing",
            );
            return None;
        }
        if matched.is_none() && render.is_empty() && rejected.is_none() && ok {
            self.error(
                node,
                "`expect` needs `matched`, `render` or `rejected`, or the test checks nothing",
            );
            return None;
        }
        ok.then_some((matched, render, rejected))
    }
}
