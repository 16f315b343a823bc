//! The `sso-token` command: `serve` (the default), `check-config`, `issue-code`,
//! `hash-secret`, `keygen`, `pubkey`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use sso_token::clock::unix_now;
use sso_token::config::Settings;
use sso_token::issue_code::{self, NewCode};
use sso_token::open_files;
use sso_token::secret_prompt;
use sso_token::startup::Application;
use sso_token::store::Store;
use sso_token::tokens::{KeyKind, VerifyingKey};
use sso_token::userinfo::Profile;

/// glibc's malloc took ~14 % of the server's CPU in an EdDSA exchange profile (perf,
/// BENCHMARKS.md); mimalloc's thread-local free lists make the many small per-request
/// allocations cheap.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Where the global options show in every command's help: apart from the command's own, since
/// keygen, pubkey and hash-secret take them but read no configuration.
const CONFIG_HEADING: &str = "Configuration (serve, check-config, issue-code)";

#[derive(Parser)]
#[command(
    version,
    about = "OAuth 2.0 token endpoint: exchanges Redis authorization codes for signed JWTs"
)]
struct Cli {
    /// Folder with default.toml and, with --env / SSO_ENV, <env>.toml.
    #[arg(long, env = "SSO_CONFIG_DIR", default_value = "config", global = true, help_heading = CONFIG_HEADING)]
    config_dir: PathBuf,
    /// Overlay <config-dir>/<env>.toml on top of <config-dir>/default.toml (for example `dev`).
    #[arg(long, env = "SSO_ENV", global = true, help_heading = CONFIG_HEADING)]
    env: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the token endpoint (the default).
    Serve,
    /// Check the configuration as a start would (settings, TLS files, keys, clients file) and
    /// print its summary, with the start's warnings; binds no port and does not contact Redis.
    /// Exits 1, naming the setting or file, where a start would refuse.
    CheckConfig,
    /// Write an authorization code into Redis as the authorize service would, and print it.
    /// It warns (and still writes it) when clients.file says the exchange would be refused.
    IssueCode(Box<IssueCodeArgs>),
    /// Print the stored form of a client secret (read from stdin when not given).
    HashSecret {
        /// The secret (better on stdin: out of the shell history and `ps`); it may begin with
        /// `-`.
        // One base64url secret in 64 begins with `-`, which clap would refuse as an unknown
        // option, quoting it. A misspelt option (`--argon`) must not be hashed as the secret:
        // refused after parsing (`option_like`), since clap's refusal of a value quotes it.
        #[arg(allow_hyphen_values = true)]
        secret: Option<String>,
        /// Argon2id PHC string instead of the default sha256:<hex>.
        #[arg(long)]
        argon2: bool,
        /// Make a new secret (32 random base64url characters) and print it, then its stored
        /// form on the next line.
        #[arg(long, conflicts_with = "secret")]
        generate: bool,
    },
    /// Write a new private signing key as PEM (mode 0600) and print its kid.
    Keygen {
        /// Where to write the key (refused if it exists, unless --force).
        #[arg(long)]
        out: PathBuf,
        /// The key type, which sets the tokens' `alg`: RS256 (rsa*), ES256 (p256), EdDSA (ed25519).
        #[arg(long, value_enum, default_value = "rsa2048")]
        kind: KeyKind,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Print the public half of a key file as a PEM public key, for token.verify_keys: a
    /// retired signer keeps verifying its tokens without its private key on disk.
    Pubkey {
        /// PEM key file: a private key, or a public key to write in the standard form.
        #[arg(long)]
        key: PathBuf,
    },
    /// Print the public halves of key files as a JWK Set, for a private_key_jwt client's
    /// jwks_file: the keys the client signs its assertions with.
    Jwks {
        /// PEM key file, public or private (only its public half is printed); repeat for more
        /// keys. Each key's kid is its RFC 7638 thumbprint.
        #[arg(long, required = true)]
        key: Vec<PathBuf>,
    },
}

/// `issue-code`'s arguments: the code record's fields, and the code's lifetime.
#[derive(clap::Args)]
struct IssueCodeArgs {
    /// The client id the code is issued to.
    #[arg(long)]
    client: String,
    /// The redirect URI of the authorization request; the exchange must send the same.
    #[arg(long)]
    redirect_uri: String,
    /// The signed-in user's name (the answer's `username`).
    #[arg(long, default_value = "zhangs")]
    username: String,
    /// The user's account id (the token's `sub`).
    #[arg(long, default_value = "8cneYRM97jU0pqVpJWY")]
    account_id: String,
    /// Granted scope; repeat the flag for several.
    #[arg(long = "scope", default_value = "user:basic", value_parser = scope)]
    scopes: Vec<String>,
    /// PKCE challenge stored with the code: 43–128 of `A-Z a-z 0-9 - . _ ~` (RFC 7636
    /// §4.2). It may begin with `-` (one S256 challenge in 64 does); the check keeps a
    /// forgotten value from swallowing the next option.
    #[arg(long, allow_hyphen_values = true, value_parser = pkce_challenge)]
    code_challenge: Option<String>,
    /// PKCE method written with a challenge: S256 unless given (what clients send; a record
    /// without a method reads as `plain`, RFC 7636 §4.3).
    #[arg(long, value_parser = ["S256", "plain"], requires = "code_challenge")]
    code_challenge_method: Option<String>,
    /// Lifetime of the code in seconds, 1 to 86400 (the reference authorize service uses
    /// 60).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    ttl: u64,
    #[command(flatten)]
    profile: ProfileArgs,
}

impl IssueCodeArgs {
    /// The record to write, issued now; a challenge without a method gets S256.
    fn record(self) -> NewCode {
        NewCode {
            client_id: self.client,
            redirect_uri: self.redirect_uri,
            username: self.username,
            account_id: self.account_id,
            scope: self.scopes,
            code_challenge_method: self
                .code_challenge_method
                .or_else(|| self.code_challenge.as_ref().map(|_| "S256".to_owned())),
            code_challenge: self.code_challenge,
            issued_at: unix_now(),
            profile: Profile {
                name: self.profile.name,
                avatar: self.profile.avatar,
                email: self.profile.email,
                mobile: self.profile.mobile,
            },
        }
    }
}

/// The optional profile fields of a code record (README, "The code record").
#[derive(clap::Args)]
struct ProfileArgs {
    /// Display name, shown by user info with scope user:basic.
    #[arg(long)]
    name: Option<String>,
    /// Avatar URL, shown by user info with scope user:basic.
    #[arg(long)]
    avatar: Option<String>,
    /// Shown by user info with scope user:contract.
    #[arg(long)]
    email: Option<String>,
    /// Shown by user info with scope user:contract.
    #[arg(long)]
    mobile: Option<String>,
}

fn main() -> ExitCode {
    if let Err(message) = sso_token::logging::init() {
        eprintln!("sso-token: {message}");
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    let (config_dir, env) = (&cli.config_dir, cli.env.as_deref());
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config_dir, env),
        Command::CheckConfig => check_config(config_dir, env),
        Command::IssueCode(args) => issue_code(config_dir, env, *args),
        Command::HashSecret {
            secret,
            argon2,
            generate,
        } => hash_secret(secret, argon2, generate),
        Command::Keygen { out, kind, force } => keygen(&out, kind, force),
        Command::Pubkey { key } => pubkey(&key),
        Command::Jwks { key } => jwks(&key),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("sso-token: {message}");
            ExitCode::FAILURE
        }
    }
}

/// A command's failure, printed as `sso-token: <its Display>` with exit status 1: any error
/// type, or a message (`String` and `&str` convert), goes up with `?`.
type CliResult = Result<(), Box<dyn std::error::Error>>;

/// `--scope`'s check: a scope the exchange would grant; another would make a code that can
/// only end in `invalid_scope`.
fn scope(value: &str) -> Result<String, String> {
    match sso_token::oauth::is_scope_token(value) {
        true => Ok(value.to_owned()),
        false => Err(
            "a scope is one or more printable ASCII characters but space, `\"` and \
                      `\\` (RFC 6749 §3.3)"
                .into(),
        ),
    }
}

/// `--code-challenge`'s check: RFC 7636's alphabet and lengths.
fn pkce_challenge(value: &str) -> Result<String, String> {
    if sso_token::oauth::pkce::well_formed(value) {
        Ok(value.to_owned())
    } else {
        Err("a PKCE challenge is 43 to 128 of A-Z a-z 0-9 - . _ ~ (RFC 7636 §4.2)".into())
    }
}

/// A misspelt option, not a secret: `-` or `--` and lower-case letters, digits and `-`
/// (`-argon2`, `--argon`); a random secret beginning with `-` has capitals too, all but surely.
fn option_like(value: &str) -> bool {
    value.strip_prefix('-').is_some_and(|name| {
        (name.bytes()).all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    })
}

fn serve(config_dir: &Path, env: Option<&str>) -> CliResult {
    actix_web::rt::System::new().block_on(async move {
        // First: a SIGHUP from here on (a deployment that sends one as it starts the process) is
        // a reload once the server runs, not the end of the process, SIGHUP's default action.
        let hangups = sso_token::live::listen_for_sighup()
            .map_err(|e| format!("listening for SIGHUP: {e}"))?;
        let settings = Settings::load(config_dir, env)?;
        log::info!("{}", Settings::describe_sources(config_dir, env));
        open_files::raise_and_report(&settings.server);
        // SIGHUP reads the config files and the environment again, as at start.
        let (dir, env) = (config_dir.to_owned(), env.map(str::to_owned));
        let source = Box::new(move || Settings::load(&dir, env.as_deref()));
        let scheme = if settings.server.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let listen = settings.server.listen.clone();
        let workers = settings.server.worker_threads();
        let app = Application::build_reloadable(settings, source, hangups)?;
        // The port bound, not the configured one, which may be 0.
        let host = listen
            .rsplit_once(':')
            .map_or(listen.as_str(), |(host, _)| host);
        log::info!(
            "sso-token {} listening on {scheme}://{host}:{} with {workers} worker(s)",
            env!("CARGO_PKG_VERSION"),
            app.port()
        );
        app.run_until_stopped().await?;
        // A clean stop says so: without it the log of a stop reads like the log of a crash.
        log::info!("sso-token stopped");
        Ok(())
    })
}

fn check_config(config_dir: &Path, env: Option<&str>) -> CliResult {
    let settings = Settings::load(config_dir, env)?;
    log::info!("{}", Settings::describe_sources(config_dir, env));
    let summary = sso_token::startup::check(&settings)?;
    println!("configuration valid: {summary} (no port bound, Redis not contacted)");
    Ok(())
}

fn issue_code(config_dir: &Path, env: Option<&str>, args: IssueCodeArgs) -> CliResult {
    let ttl = args.ttl;
    let record = args.record();
    let settings = Settings::load(config_dir, env)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Warnings only: the code may be meant for another deployment's registry.
    let argon2 = sso_token::secret_hash::Argon2Limit::new(1);
    match sso_token::clients::Registry::load(&settings.clients.file, &argon2) {
        Ok(registry) => {
            for doubt in issue_code::doubts(&record, &registry) {
                eprintln!("warning: {doubt}");
            }
        }
        Err(e) => eprintln!("warning: the client could not be checked: {e}"),
    }
    runtime.block_on(async {
        let store = Store::new(&settings.redis)?;
        let code = issue_code::new_code().map_err(|_| "no randomness available")?;
        store.failovers_checked().await;
        let written = issue_code::write(&store, &code, &record, ttl)
            .await
            .map_err(|e| {
                format!(
                    "writing the code to redis ({}): {e}",
                    settings.redis.target()
                )
            })?;
        if !written {
            return Err("that code is already live".into());
        }
        println!("{code}");
        Ok(())
    })
}

fn hash_secret(secret: Option<String>, argon2: bool, generate: bool) -> CliResult {
    if secret.as_deref().is_some_and(option_like) {
        // Exits as clap's own usage errors do (status 2), without quoting the value, under
        // hash-secret's own usage line.
        let mut cli = Cli::command();
        cli.build();
        let mut hash_secret = cli.find_subcommand("hash-secret").cloned();
        (hash_secret.as_mut().unwrap_or(&mut cli))
            .error(
                clap::error::ErrorKind::InvalidValue,
                "hash-secret has no such option, and does not take an argument that looks \
                 like one as a secret (a misspelt option would be hashed): give such a secret \
                 on stdin",
            )
            .exit();
    }
    let secret = match secret {
        _ if generate => {
            let secret = secret_prompt::new_secret().map_err(|_| "no random bytes")?;
            println!("{secret}");
            secret
        }
        Some(secret) => secret,
        None => secret_prompt::read_secret()?,
    };
    sso_token::secret_hash::presentable(&secret)?;
    for warning in secret_prompt::doubts(&secret) {
        eprintln!("warning: {warning}");
    }
    let stored = if argon2 {
        sso_token::secret_hash::hash_secret_argon2(&secret)?
    } else {
        sso_token::secret_hash::hash_secret_sha256(&secret)
    };
    println!("{stored}");
    Ok(())
}

fn keygen(out: &Path, kind: KeyKind, force: bool) -> CliResult {
    let kid = sso_token::tokens::write_key_file(out, kind, force)?;
    println!("{kid}");
    Ok(())
}

fn pubkey(key: &Path) -> CliResult {
    print!("{}", public_key(key)?.to_pem());
    Ok(())
}

/// The JWK Set of `keys`' public halves, without `alg`: a client's RSA key then verifies both
/// RS256 and PS256 (`clients::jwks`), whichever the client signs with.
fn jwks(keys: &[PathBuf]) -> CliResult {
    let mut set = Vec::with_capacity(keys.len());
    for key in keys {
        let mut jwk = serde_json::to_value(public_key(key)?.public_jwk())?;
        if let Some(members) = jwk.as_object_mut() {
            members.remove("alg");
        }
        set.push(jwk);
    }
    let set = serde_json::json!({ "keys": set }).to_string();
    // What the registry would refuse (a key given twice, too many keys) is refused here.
    sso_token::clients::jwks::ClientKeys::parse(&set)
        .map_err(|problem| format!("not a jwks_file the registry takes: {problem}"))?;
    println!("{set}");
    Ok(())
}

/// The public key of a PEM key file, public or private; the error names the file.
fn public_key(key: &Path) -> Result<VerifyingKey, String> {
    let pem = std::fs::read_to_string(key).map_err(|e| format!("{}: {e}", key.display()))?;
    VerifyingKey::from_pem(&pem).map_err(|e| format!("{}: {e}", key.display()))
}
