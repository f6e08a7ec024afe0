//! The server's opt-in [`WriteLog`] (every committed write, per object, over the whole run) and
//! what Sieve's state-update summary makes of it: per object, how many ADDED and DELETED events.
//!
//! Why a log of its own rather than the server's change log ([`crate::ApiServer::history`]): the
//! change log keeps only the last [`history_max`](crate::ServerConfig::history_max) changes, so a
//! summary computed from it undercounts any run longer than that, silently. The write log is off
//! by default (one branch per write) and kept whole when on
//! ([`ServerConfig::with_update_summary`](crate::ServerConfig::with_update_summary)): a count per
//! object and kind of event, and the virtual time of each write (for [`super::Stability`]).

use std::collections::BTreeMap;
use std::fmt;

use sim_core::SimTime;

use super::mask::Mask;
use super::{GENERATED, ObjectId, is_generated};
use crate::object::Object;
use crate::server::{ApiServer, EventType};

/// How many events of each type an object had.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Counts {
    /// Creates.
    pub added: u32,
    /// Updates, patches, and deletions that only set deletionTimestamp or a finalizer.
    pub modified: u32,
    /// Removals from the store.
    pub deleted: u32,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.added += other.added;
        self.modified += other.modified;
        self.deleted += other.deleted;
    }
}

/// What the write log holds for one object identity (a name reused after a deletion is the same
/// identity: its counts add up, as Sieve's do).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteRecord {
    /// The events by type.
    pub counts: Counts,
    /// The object's `generateName` if its (last created) name was generated from it, else empty.
    pub generate_name: String,
    /// Every write: the virtual time it was committed at and its event type, oldest first.
    pub writes: Vec<(SimTime, EventType)>,
}

/// Every write the server committed, per object, since it was made (with
/// [`ServerConfig::with_update_summary`](crate::ServerConfig::with_update_summary); see
/// [`crate::ApiServer::write_log`]). The writer (which task or client) is not recorded: the
/// server's verbs do not know their caller.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteLog {
    objects: BTreeMap<ObjectId, WriteRecord>,
}

impl WriteLog {
    /// Records one committed write (called by the store, inside the write's step).
    pub(crate) fn record(&mut self, event_type: EventType, object: &Object) {
        let record = self.objects.entry(ObjectId::of(object)).or_default();
        match event_type {
            EventType::Added => {
                record.counts.added += 1;
                record.generate_name = if is_generated(object) {
                    object.metadata.generate_name.clone()
                } else {
                    String::new()
                };
            }
            EventType::Modified => record.counts.modified += 1,
            EventType::Deleted => record.counts.deleted += 1,
            EventType::Bookmark | EventType::Error => return,
        }
        record.writes.push((sim_core::now(), event_type));
    }

    /// The records by object, in order.
    pub fn objects(&self) -> &BTreeMap<ObjectId, WriteRecord> {
        &self.objects
    }

    /// The records of `kinds` (empty: all) less the kinds `mask` ignores, with generated names
    /// folded into `generateName` + [`GENERATED`] when the mask masks them (their counts and
    /// writes merged, the writes in time order).
    pub(crate) fn masked(
        &self,
        kinds: &[(&str, &str)],
        mask: &Mask,
    ) -> BTreeMap<ObjectId, WriteRecord> {
        let mut out: BTreeMap<ObjectId, WriteRecord> = BTreeMap::new();
        for (id, record) in &self.objects {
            let chosen = kinds.is_empty()
                || kinds.iter().any(|(av, kind)| *av == id.api_version && *kind == id.kind);
            if !chosen || mask.ignores(&id.kind) {
                continue;
            }
            let mut id = id.clone();
            if mask.masks_generated_names() && !record.generate_name.is_empty() {
                id.name = format!("{}{GENERATED}", record.generate_name);
            }
            let merged = out.entry(id).or_default();
            merged.counts.add(record.counts);
            merged.generate_name.clone_from(&record.generate_name);
            merged.writes.extend(record.writes.iter().copied());
            merged.writes.sort_by_key(|(time, _)| *time);
        }
        out
    }
}

/// Sieve's state-update summary: per object, how many ADDED, MODIFIED and DELETED events it had
/// over the whole run. A perturbed run whose summary differs from the reference's in ADDED or
/// DELETED counts deleted or recreated something the reference did not (17 of Sieve's 46 bugs
/// were found so).
///
/// Needs the server's write log ([`ServerConfig::with_update_summary`]), which, unlike the change
/// log, is never compacted: counts are right however long the run.
///
/// ```
/// use apiserver_fake::{ApiServer, DeleteOptions, Mask, Object, Registry, ServerConfig, UpdateSummary};
/// use sim_core::{Outcome, Simulation};
///
/// let outcome = Simulation::default().run(1, || {
///     let config = ServerConfig::default().with_update_summary(true).with_history_max(1);
///     let server = ApiServer::new(Registry::builtin(), config);
///     let cm = || Object::new("v1", "ConfigMap", "default", "a");
///     server.create(cm()).unwrap();
///     server.delete("v1", "ConfigMap", "default", "a", &DeleteOptions::default()).unwrap();
///     server.create(cm()).unwrap();
///     let summary = UpdateSummary::capture(&server, &[("v1", "ConfigMap")], &Mask::default()).unwrap();
///     let (id, counts) = summary.counts().iter().next().unwrap();
///     assert_eq!(id.to_string(), "ConfigMap default/a");
///     assert_eq!((counts.added, counts.deleted), (2, 1));
///     // Without the write log there is no summary (the change log alone could be wrong).
///     assert!(UpdateSummary::capture(&ApiServer::default(), &[], &Mask::default()).is_none());
/// });
/// assert_eq!(outcome, Outcome::Completed);
/// ```
///
/// [`ServerConfig::with_update_summary`]: crate::ServerConfig::with_update_summary
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpdateSummary {
    counts: BTreeMap<ObjectId, Counts>,
}

impl UpdateSummary {
    /// The summary of `server`'s run so far, for `kinds` (`(apiVersion, kind)`; empty: all) less
    /// the kinds `mask` ignores; generated names folded as [`WriteLog`] describes. `None` if
    /// the server keeps no write log.
    pub fn capture(server: &ApiServer, kinds: &[(&str, &str)], mask: &Mask) -> Option<Self> {
        server.write_log().map(|log| UpdateSummary::from_log(&log, kinds, mask))
    }

    /// The summary of a write log.
    pub fn from_log(log: &WriteLog, kinds: &[(&str, &str)], mask: &Mask) -> Self {
        let counts =
            log.masked(kinds, mask).into_iter().map(|(id, record)| (id, record.counts)).collect();
        UpdateSummary { counts }
    }

    /// The counts by object.
    pub fn counts(&self) -> &BTreeMap<ObjectId, Counts> {
        &self.counts
    }

    /// The counts of `id` (zero if it never had an event).
    pub fn get(&self, id: &ObjectId) -> Counts {
        self.counts.get(id).copied().unwrap_or_default()
    }

    /// The objects whose ADDED or DELETED counts differ between this run and `reference` (an
    /// object one side never had counts zero), in order. MODIFIED counts are not compared (they
    /// vary with retries and interleavings, as Sieve found).
    pub fn diff(&self, reference: &UpdateSummary) -> Vec<CountDiff> {
        let mut ids: Vec<&ObjectId> = self.counts.keys().chain(reference.counts.keys()).collect();
        ids.sort();
        ids.dedup();
        ids.into_iter()
            .map(|id| CountDiff {
                object: id.clone(),
                reference: reference.get(id),
                run: self.get(id),
            })
            .filter(|d| (d.reference.added, d.reference.deleted) != (d.run.added, d.run.deleted))
            .collect()
    }
}

/// An object whose ADDED or DELETED counts differ ([`UpdateSummary::diff`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CountDiff {
    /// The object.
    pub object: ObjectId,
    /// Its counts in the reference.
    pub reference: Counts,
    /// Its counts in this run.
    pub run: Counts,
}

/// `PersistentVolumeClaim default/data-zk-0: ADDED 1/2, DELETED 0/1 (reference/this run)`.
impl fmt::Display for CountDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: ADDED {}/{}, DELETED {}/{} (reference/this run)",
            self.object,
            self.reference.added,
            self.run.added,
            self.reference.deleted,
            self.run.deleted
        )
    }
}

/// [`CountDiff`]s as a table, one object a row, at most [`CountTable::DISPLAY_MAX`] rows then
/// `… N more`:
///
/// ```text
/// object                                ADDED ref/run  DELETED ref/run
/// PersistentVolumeClaim default/data-0            1/2              0/1
/// ```
#[derive(Clone, Copy, Debug)]
pub struct CountTable<'a>(pub &'a [CountDiff]);

impl CountTable<'_> {
    /// The most rows shown.
    pub const DISPLAY_MAX: usize = 25;
}

impl fmt::Display for CountTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (added, deleted) = ("ADDED ref/run", "DELETED ref/run");
        let rows: Vec<(String, String, String)> = self
            .0
            .iter()
            .take(Self::DISPLAY_MAX)
            .map(|d| {
                (
                    d.object.to_string(),
                    format!("{}/{}", d.reference.added, d.run.added),
                    format!("{}/{}", d.reference.deleted, d.run.deleted),
                )
            })
            .collect();
        let width = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0).max(6);
        write!(f, "{:<width$}  {added}  {deleted}", "object")?;
        for (object, a, d) in &rows {
            write!(
                f,
                "\n{object:<width$}  {a:>w1$}  {d:>w2$}",
                w1 = added.len(),
                w2 = deleted.len()
            )?;
        }
        if self.0.len() > Self::DISPLAY_MAX {
            write!(f, "\n… {} more", self.0.len() - Self::DISPLAY_MAX)?;
        }
        Ok(())
    }
}
