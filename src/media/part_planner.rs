//! [`PartPlanner`]: where a segment being built splits into LL-HLS partial segments.
//!
//! A part is cut before a frame when that frame is a keyframe (so keyframe parts start
//! decodable and carry `INDEPENDENT=YES`) or when at least `part_ms` of media has gathered
//! since the part's first frame. Segments keep being cut by the segment cutter as before; the
//! planner is told when one ends ([`PartPlanner::segment_ended`]) so part numbers restart at 0
//! and the last part of a segment ends exactly where the segment does.
//! Pure logic on decode times: the writer turns each [`PartCut`] into a fragment and an object.

/// One part, closed: frames with decode time in `start_ms..end_ms` of the current segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartCut {
    /// 0 for a segment's first part; names the object (`{segment}.{index}.m4s`).
    pub index: u32,
    pub start_ms: u64,
    pub end_ms: u64,
    /// Starts with a keyframe.
    pub independent: bool,
}

impl PartCut {
    pub fn duration_s(&self) -> f64 {
        self.end_ms.saturating_sub(self.start_ms) as f64 / 1000.0
    }
}

/// The open part of the segment being built.
#[derive(Debug, Clone, Copy)]
struct OpenPart {
    index: u32,
    start_ms: u64,
    independent: bool,
}

/// Decides part boundaries from the video frames' decode times (see the module doc).
#[derive(Debug, Clone)]
pub struct PartPlanner {
    part_ms: u64,
    open: Option<OpenPart>,
    next_index: u32,
}

impl PartPlanner {
    /// `part_ms` is the part target (> 0; LL-HLS off means no planner at all).
    pub fn new(part_ms: u64) -> PartPlanner {
        PartPlanner {
            part_ms: part_ms.max(1),
            open: None,
            next_index: 0,
        }
    }

    /// A video frame arrives: the part it closes, if it starts a new one.
    pub fn frame(&mut self, dts_ms: u64, keyframe: bool) -> Option<PartCut> {
        let closed = match self.open {
            Some(open) if keyframe || dts_ms.saturating_sub(open.start_ms) >= self.part_ms => {
                Some(Self::close(open, dts_ms))
            }
            Some(_) => return None,
            None => None,
        };
        self.open = Some(OpenPart {
            index: self.next_index,
            start_ms: dts_ms,
            independent: keyframe,
        });
        self.next_index += 1;
        closed
    }

    /// The segment cutter closed a segment ending at `end_ms`: the last part of that segment
    /// (if any frames were open), and numbering restarts for the next segment.
    pub fn segment_ended(&mut self, end_ms: u64) -> Option<PartCut> {
        self.next_index = 0;
        self.open.take().map(|open| Self::close(open, end_ms))
    }

    fn close(open: OpenPart, end_ms: u64) -> PartCut {
        PartCut {
            index: open.index,
            start_ms: open.start_ms,
            end_ms: end_ms.max(open.start_ms),
            independent: open.independent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames every 33 ms, keyframes at the given indexes; returns the cuts.
    fn plan(part_ms: u64, frames: usize, keyframes: &[usize]) -> Vec<PartCut> {
        let mut planner = PartPlanner::new(part_ms);
        let mut cuts = Vec::new();
        for n in 0..frames {
            cuts.extend(planner.frame(n as u64 * 33, keyframes.contains(&n)));
        }
        cuts.extend(planner.segment_ended(frames as u64 * 33));
        cuts
    }

    #[test]
    fn parts_are_cut_once_the_target_has_gathered() {
        let cuts = plan(300, 30, &[0]);
        // 10 frames = 330 ms >= 300: cut before frame 10 and 20.
        assert_eq!(cuts.len(), 3);
        assert_eq!((cuts[0].start_ms, cuts[0].end_ms), (0, 330));
        assert_eq!((cuts[1].start_ms, cuts[1].end_ms), (330, 660));
        assert_eq!((cuts[2].start_ms, cuts[2].end_ms), (660, 990));
        assert_eq!(
            cuts.iter().map(|c| c.index).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        assert!(cuts[0].independent && !cuts[1].independent && !cuts[2].independent);
    }

    #[test]
    fn a_keyframe_starts_an_independent_part() {
        let cuts = plan(300, 12, &[0, 4]);
        assert_eq!((cuts[0].start_ms, cuts[0].end_ms), (0, 132));
        assert!(cuts[1].independent);
        assert_eq!(cuts[1].start_ms, 132);
    }

    #[test]
    fn parts_tile_the_segment_and_numbering_restarts() {
        let mut planner = PartPlanner::new(300);
        let mut cuts = Vec::new();
        for n in 0..20u64 {
            cuts.extend(planner.frame(n * 33, n == 0));
        }
        let last = planner.segment_ended(20 * 33).unwrap();
        cuts.push(last);
        for pair in cuts.windows(2) {
            assert_eq!(pair[0].end_ms, pair[1].start_ms);
        }
        assert_eq!(cuts.last().unwrap().end_ms, 660);
        assert!(planner.frame(660, true).is_none());
        assert_eq!(planner.segment_ended(700).unwrap().index, 0);
        assert!(planner.segment_ended(800).is_none());
    }
}
