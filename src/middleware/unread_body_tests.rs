use super::*;

fn answer() -> Bytes {
    Bytes::from_static(b"{\"active\":false}")
}

/// actix takes a body that can be bytes as bytes (`BoxBody::new`), and drops it: an answer
/// holding a chunked request's body must never be one, or the request's body would be let go
/// before the answer is written, and the connection kept with the rest of it unread.
#[test]
fn an_answer_holding_a_chunked_body_is_never_taken_as_bytes_and_any_other_is() {
    let free = Holding {
        body: answer(),
        held: None,
    };
    assert_eq!(free.try_into_bytes().ok(), Some(answer()));

    let holding = Holding {
        body: answer(),
        held: Some(Rc::new(RefCell::new(Payload::None))),
    };
    let kept = holding.try_into_bytes().expect_err("taken as bytes");
    assert!(kept.held.is_some(), "let go of the request's body");
    assert_eq!(kept.body, answer());
}
