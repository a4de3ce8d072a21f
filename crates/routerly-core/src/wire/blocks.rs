//! Content-block numbering for decoders of formats that have no blocks of their own
//! (Gemini, Ollama): text and thinking arrive as pieces, and the canonical stream needs
//! them as numbered blocks that open, grow and close, one open at a time.

use crate::canonical::StreamEvent;

/// Which kind of block is open, with its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenBlock {
    /// A text block.
    Text(usize),
    /// A thinking block.
    Thinking(usize),
}

impl OpenBlock {
    fn index(self) -> usize {
        match self {
            OpenBlock::Text(index) | OpenBlock::Thinking(index) => index,
        }
    }
}

/// Hands out block indexes in order of appearance and keeps at most one text or thinking
/// block open.
#[derive(Debug, Default)]
pub(crate) struct BlockTracker {
    next_index: usize,
    open: Option<OpenBlock>,
}

impl BlockTracker {
    /// A fresh index for a block that opens and closes at once (a whole tool call).
    pub(crate) fn next_index(&mut self) -> usize {
        let index = self.next_index;
        self.next_index += 1;
        index
    }

    /// The index of the open block of `kind`, opening one (and closing another) if needed.
    pub(crate) fn ensure(
        &mut self,
        kind: fn(usize) -> OpenBlock,
        events: &mut Vec<StreamEvent>,
    ) -> usize {
        if let Some(open) = self.open
            && open == kind(open.index())
        {
            return open.index();
        }
        self.close(events);
        let block = kind(self.next_index());
        events.push(match block {
            OpenBlock::Text(index) => StreamEvent::TextStart { index },
            OpenBlock::Thinking(index) => StreamEvent::ThinkingStart { index },
        });
        self.open = Some(block);
        block.index()
    }

    /// Closes the open block, if any.
    pub(crate) fn close(&mut self, events: &mut Vec<StreamEvent>) {
        if let Some(open) = self.open.take() {
            events.push(StreamEvent::BlockStop {
                index: open.index(),
            });
        }
    }
}
