//! Stop strings (the OpenAI `stop` parameter) on streamed text. Generation ends at the first
//! occurrence of any stop string, and the answer ends just before it. While streaming, text that
//! could be the beginning of a stop string is held back until the next pieces show whether it
//! is one, so a client never receives part of a stop string.

/// The text of one answer as it grows, and how much of it has been handed out.
#[derive(Debug, Default)]
pub struct StopText {
    stops: Vec<String>,
    text: String,
    sent: usize,
}

/// What a new piece of text gives.
#[derive(Debug, PartialEq)]
pub enum Piece {
    /// Text safe to hand out now (may be empty).
    More(String),
    /// A stop string was found: the last text to hand out, then the answer is over.
    Stopped(String),
}

impl StopText {
    /// Empty stop strings are ignored (they would end every answer before it begins).
    pub fn new(stops: Vec<String>) -> StopText {
        StopText { stops: stops.into_iter().filter(|s| !s.is_empty()).collect(), text: String::new(), sent: 0 }
    }

    /// Adds a piece of decoded text.
    pub fn push(&mut self, piece: &str) -> Piece {
        // Only a stop string overlapping the new text can be new: search from a stop string's
        // length before the end of what was there.
        let longest = self.stops.iter().map(|s| s.len()).max().unwrap_or(0);
        let mut from = self.text.len().saturating_sub(longest);
        while !self.text.is_char_boundary(from) {
            from -= 1;
        }
        self.text.push_str(piece);
        let found = self.stops.iter().filter_map(|s| self.text[from..].find(s.as_str()).map(|at| from + at)).min();
        if let Some(at) = found {
            let end = at.max(self.sent);
            let out = self.text[self.sent..end].to_string();
            self.text.truncate(end);
            self.sent = end;
            return Piece::Stopped(out);
        }
        let safe = self.text.len() - self.held_back();
        let out = self.text[self.sent..safe.max(self.sent)].to_string();
        self.sent = safe.max(self.sent);
        Piece::More(out)
    }

    /// Ends the answer (budget or end-of-turn token): whatever was held back is handed out.
    pub fn finish(&mut self) -> String {
        let out = self.text[self.sent..].to_string();
        self.sent = self.text.len();
        out
    }

    /// The whole answer so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Bytes at the end that are a proper prefix of some stop string.
    fn held_back(&self) -> usize {
        let mut longest = 0;
        for stop in &self.stops {
            for (i, _) in stop.char_indices().skip(1) {
                if i > longest && self.text.ends_with(&stop[..i]) {
                    longest = i;
                }
            }
        }
        longest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (Vec<String>, bool) {
        let mut s = StopText::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out = Vec::new();
        for p in pieces {
            match s.push(p) {
                Piece::More(t) => out.push(t),
                Piece::Stopped(t) => {
                    out.push(t);
                    return (out, true);
                }
            }
        }
        out.push(s.finish());
        (out, false)
    }

    #[test]
    fn a_stop_string_split_over_pieces_is_never_sent() {
        let (out, stopped) = run(&["\n\nUser"], &["Hello", "\n", "\nUs", "er: hi"]);
        assert!(stopped);
        assert_eq!(out.concat(), "Hello");
        assert_eq!(out, vec!["Hello", "", "", ""]);
    }

    #[test]
    fn a_false_start_is_released_once_it_diverges() {
        let (out, stopped) = run(&["END"], &["a E", "N", "x", "y"]);
        assert!(!stopped);
        assert_eq!(out, vec!["a ", "", "ENx", "y", ""]);
    }

    #[test]
    fn the_earliest_stop_wins_and_multibyte_text_is_cut_on_boundaries() {
        let (out, stopped) = run(&["é!", "b"], &["aé", "!b"]);
        assert!(stopped);
        assert_eq!(out.concat(), "a");
        let (out, stopped) = run(&[], &["x", "y"]);
        assert!(!stopped);
        assert_eq!(out.concat(), "xy");
    }
}
