//! The chat message of repic, used by every crate (prompt building, the model's chat template, training,
//! evaluation, serving): a role and interleaved images and text. Only the model's chat template knows how a
//! checkpoint marks turns up.

use serde::{Deserialize, Serialize};

/// Who speaks a chat message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// System instruction.
    System,
    /// The user.
    User,
    /// The model.
    Assistant,
}

impl Role {
    /// The role's name in chat templates (`system`, `user`, `assistant`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One piece of a multimodal message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
pub enum Part {
    /// An image, by path (relative paths are resolved against the folder the caller names).
    Image(String),
    /// Text.
    Text(String),
}

/// A chat message: a role and interleaved images and text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Speaker.
    pub role: Role,
    /// Content, in order.
    pub content: Vec<Part>,
}

impl Message {
    /// A system message of one text.
    pub fn system(text: impl Into<String>) -> Self {
        Message { role: Role::System, content: vec![Part::Text(text.into())] }
    }

    /// A user turn with `images` first, then `text` (the RePIC training and `repic generate` layout).
    pub fn user_with_images<S: Into<String>>(images: impl IntoIterator<Item = S>, text: impl Into<String>) -> Self {
        let mut content: Vec<Part> = images.into_iter().map(|p| Part::Image(p.into())).collect();
        content.push(Part::Text(text.into()));
        Message { role: Role::User, content }
    }

    /// An assistant turn of one text.
    pub fn assistant(text: impl Into<String>) -> Self {
        Message { role: Role::Assistant, content: vec![Part::Text(text.into())] }
    }

    /// The image paths of the message, in order.
    pub fn images(&self) -> impl Iterator<Item = &str> {
        self.content.iter().filter_map(|p| if let Part::Image(path) = p { Some(path.as_str()) } else { None })
    }
}

/// The image paths of a whole chat, in order.
pub fn chat_images(messages: &[Message]) -> Vec<&str> {
    messages.iter().flat_map(Message::images).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_listed_in_order_and_roles_named() {
        let chat = [Message::system("Be brief."), Message::user_with_images(["a.png", "b.png"], "Who?")];
        assert_eq!(chat_images(&chat), ["a.png", "b.png"]);
        assert_eq!(chat[1].content.last(), Some(&Part::Text("Who?".into())));
        assert_eq!([Role::System, Role::User, Role::Assistant].map(Role::as_str), ["system", "user", "assistant"]);
        let json = serde_json::to_string(&chat[1]).unwrap();
        assert_eq!(
            json,
            r#"{"role":"user","content":[{"type":"image","value":"a.png"},{"type":"image","value":"b.png"},{"type":"text","value":"Who?"}]}"#
        );
        assert_eq!(serde_json::from_str::<Message>(&json).unwrap(), chat[1]);
    }
}
