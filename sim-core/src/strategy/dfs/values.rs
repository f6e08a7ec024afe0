//! The value choices of a search: draws ([`crate::choose`]), every value in turn, and
//! perturbation points ([`crate::perturb`]), "no" and then "yes" within the perturbation bound.

use super::report::{describe, describe_point};
use super::{Frame, Point, Search};
use crate::strategy::Divergence;

impl Search {
    /// Appends a frame for a value choice (a draw or a perturbation point) at the path's end.
    pub(super) fn push_value_frame(&mut self, step: u64, point: Point) {
        let (preemptions, perturbs, kind) = (self.preemptions, self.perturbs, self.kind);
        let (sleep, done, ran, tried, wanted) = (Vec::new(), Vec::new(), None, Vec::new(), None);
        let taken = 0;
        let frame = Frame {
            step,
            point,
            taken,
            preemptions,
            perturbs,
            kind,
            sleep,
            done,
            ran,
            tried,
            wanted,
        };
        self.path.push(frame);
    }

    /// [`crate::Strategy::next_draw`]: a value below `bound` at `step`, every one in turn.
    pub(super) fn draw(&mut self, step: u64, bound: u64) -> Result<u64, Divergence> {
        self.value(step, Point::Draw { bound })
    }

    /// [`crate::Strategy::next_flag`]: no, then yes within the perturbation bound.
    pub(super) fn flag(&mut self, step: u64, odds: u64) -> Result<bool, Divergence> {
        Ok(self.value(step, Point::Flag { odds })? == 1)
    }

    /// The value taken at the value choice `point` (a draw or a perturbation point) at `step`:
    /// the path's, if the run is on it (and the point fits), else the first of a new frame.
    fn value(&mut self, step: u64, point: Point) -> Result<u64, Divergence> {
        if self.stopped.is_some() {
            return Err(self.stopped_divergence());
        }
        if self.blocked {
            return Ok(0);
        }
        self.drew = true;
        if let Some(frame) = self.path.get(self.cursor) {
            let fits = frame.step == step
                && match (&frame.point, &point) {
                    (Point::Draw { bound: a }, Point::Draw { bound: b }) => a == b,
                    (Point::Flag { odds: a }, Point::Flag { odds: b }) => a == b,
                    _ => false,
                };
            if !fits {
                let (expected, found) = (describe(frame), describe_point(&point, step));
                return Err(self.diverge(format!(
                    "the search's path has {expected} here, but this run has {found}"
                )));
            }
        } else {
            self.push_value_frame(step, point);
        }
        Ok(self.take())
    }
}
