//! Copying a run log from one database to another (`hookflow migrate`,
//! SPEC §9): every run-log table in id order, in batches, each batch
//! committed in the target together with a resume marker, then both sides
//! compared table by table (row count and a SHA-256 of the sorted ids).
//!
//! Backend-neutral: a source reads raw rows ([`RawSource`], SQLite's in
//! `sqlite/raw.rs`) and a target writes them ([`RawTarget`], PostgreSQL's
//! in `postgres/raw.rs`) as [`Cell`]s, over the columns both sides have.
//! The target must be empty, or carry a marker of an earlier copy from the
//! same source (which is then resumed where it stopped).

use sha2::{Digest, Sha256};

use super::{Result, StoreError};

/// The tables copied, parents before children (foreign keys). Every one
/// has a TEXT primary key `id` (ULIDs: id order is creation order).
pub const TABLES: &[&str] = &["deliveries", "runs", "attempts", "operator_actions"];

const OP: &str = "migrate";

/// One column value as it travels between backends.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Bytes(Vec<u8>),
}

impl Cell {
    /// The value's type, for messages (never the value: it may be a body).
    pub fn kind(&self) -> &'static str {
        match self {
            Cell::Null => "null",
            Cell::Int(_) => "integer",
            Cell::Real(_) => "real",
            Cell::Text(_) => "text",
            Cell::Bytes(_) => "blob",
        }
    }
}

/// Where a copy stands in the target: the last id copied of each table
/// started, written in the same transaction as the rows it covers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Marker {
    /// What the copy reads from (the source's description, never a password).
    pub source: String,
    /// (table, last id copied, rows copied so far).
    pub tables: Vec<(String, String, u64)>,
}

impl Marker {
    fn last_id(&self, table: &str) -> Option<&str> {
        self.tables
            .iter()
            .find(|(t, _, _)| t == table)
            .map(|(_, id, _)| id.as_str())
    }
}

/// The side a copy reads from.
pub trait RawSource {
    /// What it is, for messages and the marker (no password).
    fn describe(&self) -> String;
    /// The table's column names; an empty list when the table is missing.
    fn columns(&mut self, table: &str) -> Result<Vec<String>>;
    /// Up to `limit` rows with `id` greater than `after`, in id order, with
    /// `columns` (the first of which is `id`).
    fn read(
        &mut self,
        table: &str,
        columns: &[String],
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Vec<Cell>>>;
    /// Every id of the table.
    fn ids(&mut self, table: &str) -> Result<Vec<String>>;
}

/// The side a copy writes to.
#[async_trait::async_trait]
pub trait RawTarget: Send {
    /// The table's column names; an empty list when the table is missing.
    async fn columns(&mut self, table: &str) -> Result<Vec<String>>;
    /// The marker of an earlier copy into it, if any.
    async fn marker(&mut self) -> Result<Option<Marker>>;
    /// Rows in the table.
    async fn count(&mut self, table: &str) -> Result<u64>;
    /// Insert `rows` (values of `columns`, `id` first) and set the marker
    /// of `table` to (`last_id`, `copied`), in one transaction.
    async fn write(
        &mut self,
        source: &str,
        table: &str,
        columns: &[String],
        rows: Vec<Vec<Cell>>,
        last_id: &str,
        copied: u64,
    ) -> Result<()>;
    /// Once every table is copied: rebuild what the target derives from
    /// the copied rows (PostgreSQL's dedupe claims).
    async fn finish(&mut self) -> Result<()>;
    /// Every id of the table.
    async fn ids(&mut self, table: &str) -> Result<Vec<String>>;
}

/// Progress reported while copying.
#[derive(Debug, Clone)]
pub struct Progress<'a> {
    pub table: &'a str,
    /// Rows of this table copied so far (earlier runs included).
    pub copied: u64,
}

/// One table compared on both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCheck {
    pub table: String,
    pub source_rows: u64,
    pub target_rows: u64,
    /// SHA-256 (hex) of the table's ids, sorted, each followed by `\n`.
    pub source_hash: String,
    pub target_hash: String,
}

impl TableCheck {
    pub fn matches(&self) -> bool {
        self.source_rows == self.target_rows && self.source_hash == self.target_hash
    }
}

/// What [`copy`] did.
#[derive(Debug, Clone, Default)]
pub struct Copied {
    /// True when the target carried a marker of an earlier, interrupted copy.
    pub resumed: bool,
    /// (table, rows copied by this run).
    pub rows: Vec<(String, u64)>,
}

/// Copy every table of [`TABLES`] from `source` into `target`, `batch`
/// rows per transaction, resuming after the target's marker. Refuses a
/// target that holds rows but no marker, or the marker of another source.
/// `on_batch` is told after every committed batch.
pub async fn copy(
    source: &mut dyn RawSource,
    target: &mut dyn RawTarget,
    batch: u32,
    on_batch: &mut (dyn FnMut(Progress<'_>) + Send),
) -> Result<Copied> {
    let from = source.describe();
    let marker = target.marker().await?;
    match &marker {
        Some(marker) if marker.source != from => {
            return Err(invalid(format!(
                "the target holds a copy from {}, not from {from}; migrate into an empty schema",
                marker.source
            )));
        }
        Some(_) => {}
        None => {
            for table in TABLES {
                let rows = target.count(table).await?;
                if rows > 0 {
                    return Err(invalid(format!(
                        "the target is not empty ({table} holds {rows} rows) and carries no marker of a copy from {from}; migrate into an empty schema"
                    )));
                }
            }
        }
    }
    let marker = marker.unwrap_or_default();
    let mut copied = Copied {
        resumed: !marker.tables.is_empty(),
        rows: Vec::new(),
    };
    for table in TABLES {
        let columns = shared_columns(source, target, table).await?;
        let mut after = marker.last_id(table).map(str::to_owned);
        let mut total = marker
            .tables
            .iter()
            .find(|(t, _, _)| t == table)
            .map_or(0, |(_, _, n)| *n);
        let mut this_run = 0;
        loop {
            let rows = source.read(table, &columns, after.as_deref(), batch.max(1))?;
            let Some(last) = rows.last() else { break };
            let last_id = match last.first() {
                Some(Cell::Text(id)) => id.clone(),
                other => {
                    return Err(invalid(format!(
                        "{table}: an id of type {}",
                        other.map_or("none", Cell::kind)
                    )));
                }
            };
            let n = rows.len() as u64;
            let full = n >= u64::from(batch.max(1));
            total += n;
            this_run += n;
            target
                .write(&from, table, &columns, rows, &last_id, total)
                .await?;
            on_batch(Progress {
                table,
                copied: total,
            });
            after = Some(last_id);
            if !full {
                break;
            }
        }
        copied.rows.push(((*table).to_owned(), this_run));
    }
    target.finish().await?;
    Ok(copied)
}

/// Compare every table of [`TABLES`] on both sides: row counts and the
/// hash of the sorted ids.
pub async fn verify(
    source: &mut dyn RawSource,
    target: &mut dyn RawTarget,
) -> Result<Vec<TableCheck>> {
    let mut checks = Vec::new();
    for table in TABLES {
        let (source_rows, source_hash) = hash_ids(source.ids(table)?);
        let (target_rows, target_hash) = hash_ids(target.ids(table).await?);
        checks.push(TableCheck {
            table: (*table).to_owned(),
            source_rows,
            target_rows,
            source_hash,
            target_hash,
        });
    }
    Ok(checks)
}

/// Row count and SHA-256 (hex) of the sorted ids, each followed by `\n`.
/// Sorted here, by bytes, so both backends' collations agree.
fn hash_ids(mut ids: Vec<String>) -> (u64, String) {
    ids.sort_unstable();
    let mut hasher = Sha256::new();
    for id in &ids {
        hasher.update(id.as_bytes());
        hasher.update(b"\n");
    }
    (ids.len() as u64, hex::encode(hasher.finalize()))
}

/// The columns of `table` both sides have, `id` first. A column only the
/// target has keeps its default; one only the source has is an error (its
/// data would be lost: the target's schema is older).
async fn shared_columns(
    source: &mut dyn RawSource,
    target: &mut dyn RawTarget,
    table: &str,
) -> Result<Vec<String>> {
    let theirs = source.columns(table)?;
    let ours = target.columns(table).await?;
    if theirs.is_empty() {
        return Err(invalid(format!("the source has no table {table}")));
    }
    if ours.is_empty() {
        return Err(invalid(format!("the target has no table {table}")));
    }
    if !theirs.iter().any(|c| c == "id") {
        return Err(invalid(format!("{table} has no id column in the source")));
    }
    let missing: Vec<&str> = theirs
        .iter()
        .filter(|c| !ours.contains(c))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(invalid(format!(
            "the target's {table} lacks the source's column(s) {}: its schema is older than the source's; upgrade the hookflow that migrated it",
            missing.join(", ")
        )));
    }
    let mut columns = vec!["id".to_owned()];
    columns.extend(theirs.into_iter().filter(|c| c != "id"));
    Ok(columns)
}

fn invalid(message: String) -> StoreError {
    StoreError::Invalid { op: OP, message }
}

#[cfg(test)]
mod tests {
    use super::hash_ids;

    #[test]
    fn the_hash_ignores_order_but_not_ids() {
        let a = hash_ids(vec!["b".into(), "a".into()]);
        let b = hash_ids(vec!["a".into(), "b".into()]);
        let c = hash_ids(vec!["a".into(), "c".into()]);
        assert_eq!(a, b);
        assert_eq!(a.0, 2);
        assert_ne!(a.1, c.1);
    }
}
