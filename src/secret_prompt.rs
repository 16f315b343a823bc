//! A client secret for `sso-token hash-secret`: read from stdin (typed at a terminal without
//! echo, or piped), or made; and what may be wrong with one.

use std::io::Read;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The fewest characters of a secret that [`new_secret`]'s alphabet gives 128 bits in: a
/// shorter one, if the clients file leaks, is within reach of a brute force of its hash.
pub const STRONG_SECRET_CHARS: usize = 22;

/// A new secret: 192 random bits as 32 base64url characters, which every client library sends
/// unchanged in Basic credentials (only A-Z a-z 0-9 - _).
pub fn new_secret() -> Result<String, aws_lc_rs::error::Unspecified> {
    let mut random = [0u8; 24];
    aws_lc_rs::rand::fill(&mut random)?;
    Ok(URL_SAFE_NO_PAD.encode(random))
}

/// What may be wrong with a secret that is still hashed: too short to resist a brute force of
/// its stored form, or characters that some libraries send wrongly in Basic credentials.
pub fn doubts(secret: &str) -> Vec<String> {
    let mut doubts = Vec::new();
    let chars = secret.chars().count();
    if chars < STRONG_SECRET_CHARS {
        // sha256: is unsalted and fast: a leaked clients file (a ConfigMap) gives away a short
        // secret in minutes.
        doubts.push(format!(
            "the secret is {chars} characters; under {STRONG_SECRET_CHARS} random ones (128 \
             bits) it can be found from its stored form if the clients file leaks: sso-token \
             hash-secret --generate makes one"
        ));
    }
    if !secret.bytes().all(crate::oauth::is_unreserved) {
        // RFC 6749 §2.3.1 form-encodes Basic credentials, and we decode them; clients that
        // skip the encoding then send another secret.
        doubts.push(format!(
            "the secret has characters other than A-Z a-z 0-9 - . _ ~; clients that put it \
             into client_secret_basic without form-encoding it ({}) will fail to authenticate",
            crate::oauth::BASIC_WITHOUT_ENCODING
        ));
    }
    doubts
}

/// The secret from stdin, trailing line breaks dropped: one line typed at a terminal
/// ([`read_typed`]), else all of stdin.
pub fn read_secret() -> std::io::Result<String> {
    let stdin = std::io::stdin();
    let input = if rustix::termios::isatty(&stdin) {
        read_typed(&stdin)?
    } else {
        let mut input = String::new();
        stdin.lock().read_to_string(&mut input)?;
        input
    };
    Ok(input.trim_end_matches(['\r', '\n']).to_owned())
}

/// One line typed after a prompt on stderr, with the terminal's echo off, so that the screen
/// does not show it. Ctrl-C and Ctrl-\ end the line there rather than the process: killed by a
/// signal, the process could not turn the echo back on, and the shell would go on without it.
fn read_typed(stdin: &std::io::Stdin) -> std::io::Result<String> {
    use rustix::termios::{LocalModes, OptionalActions, SpecialCodeIndex as Code};
    use rustix::termios::{tcgetattr, tcsetattr};
    let refused = |kind, message| Err(std::io::Error::new(kind, message));
    let shown = tcgetattr(stdin)?;
    let mut hidden = shown.clone();
    hidden
        .local_modes
        .remove(LocalModes::ECHO | LocalModes::ISIG);
    let (interrupt, quit) = (
        shown.special_codes[Code::VINTR],
        shown.special_codes[Code::VQUIT],
    );
    hidden.special_codes[Code::VEOL] = interrupt;
    hidden.special_codes[Code::VEOL2] = quit;
    // 0 is a control character turned off, not one to wait for.
    let ends: Vec<u8> = [b'\n', interrupt, quit]
        .into_iter()
        .filter(|&b| b != 0)
        .collect();
    tcsetattr(stdin, OptionalActions::Now, &hidden)?;
    // Only now: what is typed once the prompt is up is not echoed.
    eprint!("client secret (not shown): ");
    let mut line = Vec::new();
    let read = read_line_until(&mut stdin.lock(), &ends, &mut line);
    let restored = tcsetattr(stdin, OptionalActions::Now, &shown);
    eprintln!();
    read?;
    restored?;
    if line
        .last()
        .is_some_and(|&b| b != b'\n' && ends.contains(&b))
    {
        return refused(std::io::ErrorKind::Interrupted, "interrupted");
    }
    let Ok(typed) = String::from_utf8(line) else {
        return refused(std::io::ErrorKind::InvalidData, "the secret is not UTF-8");
    };
    // With ISIG off, Ctrl-Z (and any other control key) lands in the line unseen.
    if typed
        .trim_end_matches(['\r', '\n'])
        .contains(char::is_control)
    {
        return refused(
            std::io::ErrorKind::InvalidData,
            "the typed secret holds a control character (Ctrl-Z?); type it again",
        );
    }
    Ok(typed)
}

/// Bytes up to and with the first of `ends`, or to the end of input.
fn read_line_until(
    from: &mut impl std::io::BufRead,
    ends: &[u8],
    line: &mut Vec<u8>,
) -> std::io::Result<()> {
    loop {
        let buffered = from.fill_buf()?;
        if buffered.is_empty() {
            return Ok(());
        }
        let end = buffered.iter().position(|b| ends.contains(b));
        let taken = end.map_or(buffered.len(), |at| at + 1);
        line.extend_from_slice(&buffered[..taken]);
        from.consume(taken);
        if end.is_some() {
            return Ok(());
        }
    }
}
