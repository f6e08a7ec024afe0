//! The value choices of a search: draws ([`crate::choose`]), every value in turn, and
//! perturbation points ([`crate::perturb`]), "no" and then "yes" within the perturbation bound.

use super::report::describe;
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
        let state = self;
        if state.stopped.is_some() {
            return Err(state.stopped_divergence());
        }
        if state.blocked {
            return Ok(0);
        }
        state.drew = true;
        if let Some(frame) = state.path.get(state.cursor) {
            let fits =
                frame.step == step && matches!(frame.point, Point::Draw { bound: b } if b == bound);
            if !fits {
                let expected = describe(frame);
                return Err(state.diverge(format!(
                    "the search's path has {expected} here, but this run has a draw below \
                     {bound} at step {step}"
                )));
            }
        } else {
            let point = Point::Draw { bound };
            state.push_value_frame(step, point);
        }
        Ok(state.take())
    }

    /// [`crate::Strategy::next_flag`]: no, then yes within the perturbation bound.
    pub(super) fn flag(&mut self, step: u64, odds: u64) -> Result<bool, Divergence> {
        let state = self;
        if state.stopped.is_some() {
            return Err(state.stopped_divergence());
        }
        if state.blocked {
            return Ok(false);
        }
        state.drew = true;
        if let Some(frame) = state.path.get(state.cursor) {
            let fits =
                frame.step == step && matches!(frame.point, Point::Flag { odds: o } if o == odds);
            if !fits {
                let expected = describe(frame);
                return Err(state.diverge(format!(
                    "the search's path has {expected} here, but this run has a perturbation \
                     point at step {step}"
                )));
            }
        } else {
            state.push_value_frame(step, Point::Flag { odds });
        }
        Ok(state.take() == 1)
    }
}
