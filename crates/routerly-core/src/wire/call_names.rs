//! The function name of a tool call, by its id, for the formats whose tool results are
//! named by the function rather than by the call (Gemini's `functionResponse`, Ollama's
//! `tool_name`).

use std::collections::HashMap;

use crate::canonical::{ContentPart, Message};

/// Call names learnt message by message, so that a result takes the name of the latest call
/// with its id before it. Clients reuse ids across turns (`call_0` in every turn), and a
/// name looked up over the whole conversation would be a later call's.
#[derive(Debug, Default)]
pub(crate) struct CallNames<'a>(HashMap<&'a str, &'a str>);

impl<'a> CallNames<'a> {
    /// Learns the calls of `message`, replacing what earlier calls of the same id said.
    pub(crate) fn learn(&mut self, message: &'a Message) {
        for part in &message.content {
            if let ContentPart::ToolCall { id, name, .. } = part {
                self.0.insert(id, name);
            }
        }
    }

    /// The name of the latest call learnt with this id.
    pub(crate) fn get(&self, id: &str) -> Option<&'a str> {
        self.0.get(id).copied()
    }
}
