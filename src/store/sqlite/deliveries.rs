//! SQL of the `deliveries` table: accepting (with the delivery's runs and
//! the dedupe check), logging rejections, and reading them back.

use std::cell::RefCell;
use std::collections::HashSet;

use rusqlite::types::{Type, Value as SqlValue};
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};
use serde_json::Value as JsonValue;
use sha2::{Digest, Sha256};

use super::{body, enum_column, json_column, runs, to_json, writer};
use crate::store::{
    AcceptOutcome, Context, DeliveryFilter, DeliveryRecord, DeliveryStatus, DeliverySummary,
    NewDelivery, NewRun, Rejected, Result,
};

pub(super) const ACCEPT: &str = "accept delivery";
pub(super) const REJECT: &str = "record rejected delivery";
pub(super) const GET: &str = "get delivery";
pub(super) const LIST: &str = "list deliveries";

/// An accepted delivery with its JSON columns already encoded, ready for
/// the writer.
pub(super) struct Accept {
    /// Its `body` is moved to [`stored_body`](Self::stored_body).
    delivery: NewDelivery,
    /// The body as stored, and its encoding (`body.rs`).
    stored_body: Vec<u8>,
    body_encoding: &'static str,
    headers: String,
    matched: String,
    /// The trace without the rules its event excluded: those are in
    /// [`excluded`](Self::excluded).
    trace: String,
    excluded: Option<ExcludedList>,
    /// Its runs, each with its definition encoded (`RunDefinition`).
    runs: Vec<NewRun>,
    dedupe_window_ms: i64,
}

impl Accept {
    pub(super) fn encode(
        mut delivery: NewDelivery,
        runs: Vec<NewRun>,
        dedupe_window_ms: i64,
    ) -> Result<Accept> {
        let runs = runs::check_for_delivery(ACCEPT, &delivery.id, runs)?;
        let (stored_body, body_encoding) = body::encode(std::mem::take(&mut delivery.body));
        // Stored apart, once per distinct list (schema 0012); put back by
        // `record_from_row`.
        let (trace, excluded) = match split_excluded(delivery.trace.get()) {
            Some((trace, list)) => (trace, Some(list)),
            None => (delivery.trace.get().to_owned(), None),
        };
        Ok(Accept {
            stored_body,
            body_encoding,
            headers: to_json(ACCEPT, "headers", &delivery.headers)?,
            matched: to_json(ACCEPT, "matched rules", &delivery.matched)?,
            trace,
            excluded,
            delivery,
            runs,
            dedupe_window_ms,
        })
    }

    /// Runs on the writer as one command: either all of it is written or
    /// (on error) none.
    pub(super) fn apply(&self, conn: &Connection) -> Result<AcceptOutcome> {
        let d = &self.delivery;
        if let Some(key) = &d.dedupe_key
            && let Some(first_delivery) = self.first_within_window(conn, key)?
        {
            return Ok(AcceptOutcome::Duplicate { first_delivery });
        }
        if let Some(list) = &self.excluded {
            list.store(conn)?;
        }
        conn.prepare_cached(
            "INSERT INTO deliveries (id, source, received_at, status, method, path, query,
                                     headers, remote_addr, event, dedupe_key, body, matched, trace,
                                     body_encoding, excluded_ref)
             VALUES (?1, ?2, ?3, 'accepted', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                d.id,
                d.source,
                d.received_at,
                d.method,
                d.path,
                d.query,
                self.headers,
                d.remote_addr,
                d.event,
                d.dedupe_key,
                self.stored_body,
                self.matched,
                self.trace,
                self.body_encoding,
                self.excluded.as_ref().map(|list| list.hash.as_str()),
            ])
        })
        .ctx(ACCEPT)?;
        for run in &self.runs {
            runs::insert_queued(conn, run).ctx(ACCEPT)?;
        }
        Ok(AcceptOutcome::Accepted)
    }

    /// The first delivery with this key if it is still inside the window.
    fn first_within_window(&self, conn: &Connection, key: &str) -> Result<Option<String>> {
        if self.dedupe_window_ms <= 0 {
            return Ok(None);
        }
        let d = &self.delivery;
        // Duplicates are not stored: the newest delivery with this key is
        // the first of its window (schema 0003).
        let first: Option<(String, i64)> = conn
            .prepare_cached(
                "SELECT id, received_at FROM deliveries
                 WHERE source = ?1 AND dedupe_key = ?2
                 ORDER BY received_at DESC LIMIT 1",
            )
            .and_then(|mut stmt| {
                stmt.query_row(params![d.source, key], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()
            })
            .ctx(ACCEPT)?;
        // A delivery older than the first one (clock skew, reordering) is
        // inside the window too.
        Ok(first
            .filter(|(_, seen_at)| d.received_at.saturating_sub(*seen_at) < self.dedupe_window_ms)
            .map(|(id, _)| id))
    }
}

/// The names of the rules a delivery's event excluded, as stored in
/// `trace_excluded` (schema 0012): a JSON array and the hash naming it.
/// Every delivery of a source and event under one rule set has the same
/// list, so it is written once and each delivery only names it.
struct ExcludedList {
    /// SHA-256 of `names`, first 16 bytes in hex: a collision would show a
    /// delivery another list's names, so not a short or seeded hash.
    hash: String,
    names: String,
}

impl ExcludedList {
    /// The list whose JSON is `names`, if that is one JSON array.
    fn of(names: &str) -> Option<ExcludedList> {
        // Deliveries arriving together mostly exclude the same rules: the
        // last list checked and hashed on this thread is not done again.
        thread_local! {
            static LAST: RefCell<Option<(String, String)>> = const { RefCell::new(None) };
        }
        let hash = LAST.with_borrow_mut(|last| match last {
            Some((seen, hash)) if seen == names => Some(hash.clone()),
            _ => {
                serde_json::from_str::<serde::de::IgnoredAny>(names).ok()?;
                if !names.ends_with(']') {
                    return None;
                }
                let digest = Sha256::digest(names.as_bytes());
                let hash = hex::encode(&digest[..16]);
                *last = Some((names.to_owned(), hash.clone()));
                Some(hash)
            }
        })?;
        Some(ExcludedList {
            hash,
            names: names.to_owned(),
        })
    }

    /// Written by the first delivery with this list. The writer thread
    /// remembers the lists it has written, so the others cost a hash-set
    /// lookup instead of a b-tree probe; forgotten whenever the writer rolls
    /// anything back (`writer::rollbacks`), since what it remembers may
    /// have been undone.
    fn store(&self, conn: &Connection) -> Result<()> {
        thread_local! {
            static WRITTEN: RefCell<(u64, HashSet<String>)> = RefCell::new((0, HashSet::new()));
        }
        const MOST_REMEMBERED: usize = 1024;
        let rollbacks = writer::rollbacks();
        let known = WRITTEN.with_borrow_mut(|(seen, written)| {
            if *seen != rollbacks || written.len() >= MOST_REMEMBERED {
                *seen = rollbacks;
                written.clear();
            }
            written.contains(&self.hash)
        });
        if known {
            return Ok(());
        }
        conn.prepare_cached("INSERT OR IGNORE INTO trace_excluded (hash, names) VALUES (?1, ?2)")
            .and_then(|mut stmt| stmt.execute(params![self.hash, self.names]))
            .ctx(ACCEPT)?;
        WRITTEN.with_borrow_mut(|(_, written)| written.insert(self.hash.clone()));
        Ok(())
    }
}

/// The member the match trace's serializer writes last, when the delivery's
/// event excluded any rule (`rules::Trace::excluded`).
const EXCLUDED_MEMBER: &str = ",\"excluded\":[";

/// A trace's JSON without its `excluded` member, and that member's list:
/// `None` when it has none (or is not in the serializer's shape, which is
/// then stored whole). Inside a JSON string every `"` is escaped, so the
/// member's bare `,"excluded":[` can only be structure.
fn split_excluded(trace: &str) -> Option<(String, ExcludedList)> {
    let body = trace.strip_suffix('}')?;
    let at = body.rfind(EXCLUDED_MEMBER)?;
    // Exactly one array, ending the object.
    let list = ExcludedList::of(&body[at + EXCLUDED_MEMBER.len() - 1..])?;
    Some((format!("{}}}", &body[..at]), list))
}

/// The inverse of [`split_excluded`], on the text (for `hookflow migrate`,
/// which copies the trace as stored): the trace's JSON with `names` as its
/// last member again. `None` if `trace` is not a JSON object's text.
pub(super) fn join_excluded(trace: &str, names: &str) -> Option<String> {
    let body = trace.trim_end().strip_suffix('}')?;
    let sep = if body.trim_end().ends_with('{') {
        &EXCLUDED_MEMBER[1..]
    } else {
        EXCLUDED_MEMBER
    };
    Some(format!("{body}{}{}}}", &sep[..sep.len() - 1], names))
}

/// A rejected request with its kept headers already encoded (`"[]"` when
/// nothing is kept), ready for the writer.
pub(super) struct Reject {
    rejected: Rejected,
    headers: String,
}

impl Reject {
    pub(super) fn encode(rejected: Rejected) -> Result<Reject> {
        let headers = match &rejected.kept {
            Some(kept) => to_json(REJECT, "headers", &kept.headers)?,
            None => "[]".to_owned(),
        };
        Ok(Reject { rejected, headers })
    }

    /// No dedupe key is stored: a corrected resend of a kept 422 must not
    /// be taken for a duplicate of it.
    pub(super) fn apply(&self, conn: &Connection) -> Result<()> {
        let r = &self.rejected;
        let kept = r.kept.as_ref();
        conn.prepare_cached(
            "INSERT INTO deliveries (id, source, received_at, status, reject_status, reject_reason,
                                     method, path, remote_addr, query, headers, event, body)
             VALUES (?1, ?2, ?3, 'rejected', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                r.id,
                r.source,
                r.received_at,
                r.status,
                r.reason,
                r.method,
                r.path,
                r.remote_addr,
                kept.and_then(|k| k.query.as_deref()),
                self.headers,
                kept.map_or("", |k| k.event.as_str()),
                kept.map(|k| k.body.as_slice()),
            ])
        })
        .ctx(REJECT)?;
        Ok(())
    }
}

pub(super) fn get(conn: &Connection, id: &str) -> Result<Option<DeliveryRecord>> {
    conn.prepare_cached(
        "SELECT id, source, received_at, status, reject_status, reject_reason, method, path,
                query, headers, remote_addr, event, dedupe_key, body, matched, trace,
                body_encoding, (SELECT names FROM trace_excluded WHERE hash = excluded_ref)
         FROM deliveries WHERE id = ?1",
    )
    .and_then(|mut stmt| stmt.query_row([id], record_from_row).optional())
    .ctx(GET)
}

/// The delivery a leased run executes against: everything but the match
/// trace, which no step reads and which holds an entry per rule of the
/// source (about 10 KB at 100 rules; parsing it was wasted on every run).
pub(super) fn get_for_run(conn: &Connection, id: &str) -> Result<Option<DeliveryRecord>> {
    conn.prepare_cached(
        "SELECT id, source, received_at, status, reject_status, reject_reason, method, path,
                query, headers, remote_addr, event, dedupe_key, body, matched, 'null',
                body_encoding, NULL
         FROM deliveries WHERE id = ?1",
    )
    .and_then(|mut stmt| stmt.query_row([id], record_from_row).optional())
    .ctx(GET)
}

fn record_from_row(row: &Row<'_>) -> rusqlite::Result<DeliveryRecord> {
    Ok(DeliveryRecord {
        id: row.get(0)?,
        source: row.get(1)?,
        received_at: row.get(2)?,
        status: enum_column(row, 3, DeliveryStatus::parse)?,
        reject_status: row.get(4)?,
        reject_reason: row.get(5)?,
        method: row.get(6)?,
        path: row.get(7)?,
        query: row.get(8)?,
        headers: json_column(row, 9)?,
        remote_addr: row.get(10)?,
        event: row.get(11)?,
        dedupe_key: row.get(12)?,
        body: body_column(row, 13, 16)?,
        matched: json_column(row, 14)?,
        trace: trace_column(row, 15, 17)?,
    })
}

/// The match trace (column `at`) with the rules its event excluded put
/// back from their shared list (column `excluded`, NULL when they are
/// inline: stored before schema 0012, or none).
fn trace_column(row: &Row<'_>, at: usize, excluded: usize) -> rusqlite::Result<JsonValue> {
    let mut trace: JsonValue = json_column(row, at)?;
    if let Some(names) = row.get_ref(excluded)?.as_str_or_null()? {
        let names: JsonValue = serde_json::from_str(names).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(excluded, Type::Text, e.into())
        })?;
        if let Some(members) = trace.as_object_mut() {
            members.insert("excluded".to_owned(), names);
        }
    }
    Ok(trace)
}

/// The body as received, from its stored bytes (column `at`) and their
/// encoding (column `encoding`).
fn body_column(row: &Row<'_>, at: usize, encoding: usize) -> rusqlite::Result<Option<Vec<u8>>> {
    let Some(stored) = row.get::<_, Option<Vec<u8>>>(at)? else {
        return Ok(None);
    };
    let encoding: String = row.get(encoding)?;
    body::decode(stored, &encoding).map(Some).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(at, rusqlite::types::Type::Blob, e.into())
    })
}

/// Newest first, keyset-paginated on (received_at, id) so pages stay
/// stable while new deliveries arrive.
pub(super) fn list(conn: &Connection, filter: &DeliveryFilter) -> Result<Vec<DeliverySummary>> {
    let mut sql = String::from(
        "SELECT id, source, received_at, event, status, reject_status, matched, remote_addr
         FROM deliveries WHERE 1 = 1",
    );
    // Only the filters given become SQL, so each shape of query gets its
    // own cached plan and can use the (source, received_at, id) index.
    let mut args: Vec<SqlValue> = Vec::new();
    if let Some(source) = &filter.source {
        args.push(SqlValue::Text(source.clone()));
        sql.push_str(&format!(" AND source = ?{}", args.len()));
    }
    if let Some(since) = filter.since_ms {
        args.push(SqlValue::Integer(since));
        sql.push_str(&format!(" AND received_at >= ?{}", args.len()));
    }
    if let Some(before) = &filter.before_id {
        args.push(SqlValue::Text(before.clone()));
        let n = args.len();
        sql.push_str(&format!(
            " AND (received_at, id) < (SELECT received_at, id FROM deliveries WHERE id = ?{n})"
        ));
    }
    args.push(SqlValue::Integer(i64::from(filter.effective_limit())));
    sql.push_str(&format!(
        " ORDER BY received_at DESC, id DESC LIMIT ?{}",
        args.len()
    ));

    let mut stmt = conn.prepare_cached(&sql).ctx(LIST)?;
    let rows = stmt
        .query_map(params_from_iter(args), |row| {
            Ok(DeliverySummary {
                id: row.get(0)?,
                source: row.get(1)?,
                received_at: row.get(2)?,
                event: row.get(3)?,
                status: enum_column(row, 4, DeliveryStatus::parse)?,
                reject_status: row.get(5)?,
                matched: json_column(row, 6)?,
                remote_addr: row.get(7)?,
            })
        })
        .ctx(LIST)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().ctx(LIST)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_excluded_member_is_split_off_and_joined_back_as_written() {
        let trace = r#"{"event":"push","rules":[{"rule":"a","matched":true}],"excluded":["b","c,\"excluded\":[\"d"]}"#;
        let (without, list) = split_excluded(trace).expect("split");
        assert_eq!(
            without,
            r#"{"event":"push","rules":[{"rule":"a","matched":true}]}"#
        );
        assert_eq!(list.names, r#"["b","c,\"excluded\":[\"d"]"#);
        assert_eq!(list.hash.len(), 32, "16 bytes of SHA-256 in hex");
        assert_eq!(join_excluded(&without, &list.names).as_deref(), Some(trace));
        assert_eq!(
            join_excluded("{}", r#"["x"]"#).as_deref(),
            Some(r#"{"excluded":["x"]}"#)
        );
        assert_eq!(join_excluded("null", r#"["x"]"#), None);
    }

    #[test]
    fn a_trace_not_in_the_serializer_s_shape_is_stored_whole() {
        for trace in [
            r#"{"event":"push","rules":[]}"#,
            r#"[{"rule":"a","matched":true}]"#,
            r#"{"event":"push","rules":[],"excluded":["b"],"more":1}"#,
            r#"{"event":"push","rules":[],"excluded":["b"]]}"#,
            r#"{"event":"push","rules":[],"excluded":"b"}"#,
            "null",
        ] {
            assert!(split_excluded(trace).is_none(), "{trace}");
        }
    }
}
