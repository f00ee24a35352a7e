//! How a long computation tells its caller how far it got, without drawing anything itself: the library emits
//! [`Event`]s through a [`Progress`] callback; the CLI turns them into progress bars and lines on stderr, a
//! server could stream them, a test ignores them ([`quiet`]).
//!
//! Work nests: a [`Event::Begin`] opens a piece of work inside whatever is open (a spinner for loading the
//! data inside the feedback loop's bar), and the matching [`Event::End`] closes it; the other events concern
//! the innermost open piece.

/// One thing a computation reports as it goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A piece of work begins: `len` steps, or `None` when its length is unknown (a spinner).
    Begin { label: String, len: Option<u64> },
    /// The status line of the innermost piece of work.
    Message(String),
    /// `n` more steps of the innermost piece of work are done.
    Advance(u64),
    /// The innermost piece of work is at step `n`.
    Position(u64),
    /// The innermost piece of work now has `n` steps.
    Length(u64),
    /// The innermost piece of work is over.
    End,
    /// A line for the person running the computation: a note, a warning, an epoch's result, a file written.
    Note(String),
}

/// Where a computation sends its [`Event`]s. `Sync`, so parallel work (the demo's baselines) reports too.
pub type Progress<'a> = &'a (dyn Fn(Event) + Sync);

/// A [`Progress`] that drops every event (tests, callers that only want the results).
pub fn quiet(_: Event) {}

/// Opens a piece of work of `len` steps (`None`: unknown length).
pub(crate) fn begin(progress: Progress, label: impl Into<String>, len: Option<u64>) {
    progress(Event::Begin { label: label.into(), len });
}

/// A line for the person running the computation.
pub(crate) fn note(progress: Progress, line: impl Into<String>) {
    progress(Event::Note(line.into()));
}
