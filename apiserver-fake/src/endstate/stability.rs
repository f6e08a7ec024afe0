//! [`Stability`]: when each object was written, for oracles of eventually stable reconciliation
//! (Anvil's ESR: once the desired state stops changing, the cluster comes to match it and stays
//! so): "after time T, object X changed N times, the last at t".

use std::collections::BTreeMap;
use std::fmt;
use std::ops::RangeBounds;

use sim_core::SimTime;

use super::ObjectId;
use super::mask::Mask;
use super::summary::WriteLog;
use crate::server::{ApiServer, EventType};

/// The virtual times of every write per object, from the server's write log
/// ([`ServerConfig::with_update_summary`]). Which task or client wrote is not known: the server's
/// verbs do not learn their caller (a client's name stays in [`crate::Client`]).
///
/// ```
/// use std::time::Duration;
/// use apiserver_fake::{ApiServer, Mask, Object, Registry, ServerConfig, Stability};
/// use sim_core::{Outcome, SimTime, Simulation};
///
/// let outcome = Simulation::default().run(1, || {
///     let config = ServerConfig::default().with_update_summary(true);
///     let server = ApiServer::new(Registry::builtin(), config);
///     sim_core::spawn("user", async move {
///         let mut cm = server.create(Object::new("v1", "ConfigMap", "default", "a")).unwrap();
///         sim_core::sleep(Duration::from_secs(5)).await;
///         for value in ["1", "2"] {
///             cm = server.update(cm.with_label("round", value)).unwrap();
///         }
///         let stability = Stability::capture(&server, &[("v1", "ConfigMap")], &Mask::default()).unwrap();
///         let churn = stability.since(SimTime::from_nanos(1_000_000_000));
///         assert_eq!(churn.len(), 1);
///         assert_eq!(churn[0].writes, 2);
///         assert!(churn[0].last >= SimTime::from_nanos(5_000_000_000));
///         assert!(stability.since(sim_core::now()).is_empty(), "nothing changed after now");
///     });
/// });
/// assert_eq!(outcome, Outcome::Completed);
/// ```
///
/// [`ServerConfig::with_update_summary`]: crate::ServerConfig::with_update_summary
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stability {
    writes: BTreeMap<ObjectId, Vec<(SimTime, EventType)>>,
}

/// An object written after some time ([`Stability::since`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Churn {
    /// The object.
    pub object: ObjectId,
    /// How many writes after the time asked about.
    pub writes: usize,
    /// The first of them.
    pub first: SimTime,
    /// The last of them.
    pub last: SimTime,
    /// The type of the last write (DELETED: the object is gone).
    pub last_type: EventType,
}

/// `ConfigMap default/a: 3 writes from 1.2s to 4.5s, the last MODIFIED`.
impl fmt::Display for Churn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = if self.writes == 1 { "" } else { "s" };
        write!(
            f,
            "{}: {} write{plural} from {} to {}, the last {}",
            self.object, self.writes, self.first, self.last, self.last_type
        )
    }
}

impl Stability {
    /// The write times of `server`'s run so far, for `kinds` (`(apiVersion, kind)`; empty: all)
    /// less the kinds `mask` ignores (generated names folded as in [`WriteLog`]). `None` if the
    /// server keeps no write log.
    pub fn capture(server: &ApiServer, kinds: &[(&str, &str)], mask: &Mask) -> Option<Self> {
        server.write_log().map(|log| Stability::from_log(&log, kinds, mask))
    }

    /// The write times of a write log.
    pub fn from_log(log: &WriteLog, kinds: &[(&str, &str)], mask: &Mask) -> Self {
        let writes =
            log.masked(kinds, mask).into_iter().map(|(id, record)| (id, record.writes)).collect();
        Stability { writes }
    }

    /// The writes of `id` (time, event type), oldest first; empty if it was never written.
    pub fn writes_of(&self, id: &ObjectId) -> &[(SimTime, EventType)] {
        self.writes.get(id).map_or(&[], Vec::as_slice)
    }

    /// When `id` was last written.
    pub fn last_write(&self, id: &ObjectId) -> Option<SimTime> {
        self.writes_of(id).last().map(|(time, _)| *time)
    }

    /// How many writes of `id` fall in `window` (e.g. `start..`, `start..end`).
    pub fn writes_in(&self, id: &ObjectId, window: impl RangeBounds<SimTime>) -> usize {
        self.writes_of(id).iter().filter(|(time, _)| window.contains(time)).count()
    }

    /// The last write of any object, if any.
    pub fn last_write_overall(&self) -> Option<(SimTime, &ObjectId)> {
        self.writes
            .iter()
            .filter_map(|(id, writes)| writes.last().map(|(time, _)| (*time, id)))
            .max_by_key(|(time, _)| *time)
    }

    /// Every object written strictly after `time`, with how often and when, in object order:
    /// empty iff the cluster (the chosen kinds) has been stable since `time`.
    pub fn since(&self, time: SimTime) -> Vec<Churn> {
        self.writes
            .iter()
            .filter_map(|(id, writes)| {
                let after: Vec<&(SimTime, EventType)> =
                    writes.iter().filter(|(t, _)| *t > time).collect();
                let (first, last) = (after.first()?, after.last()?);
                Some(Churn {
                    object: id.clone(),
                    writes: after.len(),
                    first: first.0,
                    last: last.0,
                    last_type: last.1,
                })
            })
            .collect()
    }
}
