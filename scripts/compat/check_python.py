"""Python client libraries against a running sso-token, used as their documentation shows.

Run by scripts/compat.sh. For each client authentication method (client_secret_post,
client_secret_basic, and private_key_jwt with authlib's PrivateKeyJWT when --jwt-client-key is
given), authlib's OAuth2Session drives the authorization code flow as a web app
does: authorization URL with state and PKCE S256, the callback URL, the token request (form
body). PyJWT's PyJWKClient then verifies the access token knowing nothing but the `jwks_uri` of
the RFC 8414 metadata; authlib introspects the token, reads user info with it, revokes it, and
introspects it again. requests-oauthlib's OAuth2Session then exchanges a code its own way
(client_secret_basic without form-encoding, PKCE S256) and checks, as it does by default, that
the granted `scope` is the one it asked for. One line PASS or FAIL per step; exit status 1 on
any FAIL.

The authorize service is simulated: the parameters of the library's authorization URL are
written into Redis with `sso-token issue-code`, and the callback carries that code and the
state back.
"""

import argparse
import base64
import json
import os
import subprocess
import sys
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc.jwk import RSAKey
from requests_oauthlib import OAuth2Session as RequestsOAuth2Session

METADATA_PATH = "/.well-known/oauth-authorization-server"
SCOPE = "user:basic user:contract"
TIMEOUT = 10


class StepFailed(Exception):
    """A step failed; the flow it belongs to stops there."""


class Report:
    def __init__(self, label):
        self.label = label
        self.failures = 0

    def step(self, name, action):
        """Runs `action`; prints PASS with its detail, or FAIL with the error and raises."""
        try:
            detail = action()
        except Exception as error:  # every library error is a FAIL of this step
            self.failures += 1
            print(f"FAIL  {self.label}: {name}: {type(error).__name__}: {error}", flush=True)
            raise StepFailed(name) from error
        suffix = f" ({detail})" if isinstance(detail, str) and detail else ""
        print(f"PASS  {self.label}: {name}{suffix}", flush=True)
        return detail


def expect(condition, message):
    if not condition:
        raise AssertionError(message)


def authorize(sso_token, authorization_url):
    """The authorize service: writes the code for the request in `authorization_url` and
    answers with the callback URL the browser would be redirected to."""
    query = {k: v[0] for k, v in parse_qs(urlsplit(authorization_url).query).items()}
    expect(query.get("response_type") == "code", f"response_type {query.get('response_type')!r}")
    command = [
        sso_token, "issue-code",
        "--client", query["client_id"],
        "--redirect-uri", query["redirect_uri"],
        "--code-challenge", query["code_challenge"],
        "--code-challenge-method", query["code_challenge_method"],
        "--name", "Zhang San", "--email", "zhangs@example.com",
    ]
    for scope in query["scope"].split():
        command += ["--scope", scope]
    code = subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()
    expect(code, "issue-code printed no code")
    return f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"


def forged(token):
    """The token with another `sub` in its payload and the original signature."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "someone-else"
    encoded = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{encoded}.{signature}"


def flow(args, metadata, method, client_id, credential):
    """The whole flow as `client_id`, authenticating with `method`: `credential` is its secret,
    or for private_key_jwt its private key (PEM)."""
    report = Report(f"python {method}")
    try:
        run_flow(report, args, metadata, method, client_id, credential)
    except StepFailed:
        pass
    return report.failures


def run_flow(report, args, metadata, method, client_id, credential):
    session = OAuth2Session(
        client_id,
        credential,
        token_endpoint_auth_method=method,
        revocation_endpoint_auth_method=method,
        redirect_uri=args.redirect_uri,
        scope=SCOPE,
        code_challenge_method="S256",
    )
    if method == "private_key_jwt":
        # No token_endpoint: each assertion's aud is the URL it is sent to (token,
        # introspection, revocation), which the server accepts as Keycloak does.
        session.register_client_auth_method(PrivateKeyJWT())
    verifier = generate_token(48)

    def exchange():
        supported = metadata.get("token_endpoint_auth_methods_supported", [])
        expect(method in supported, f"{method} not in token_endpoint_auth_methods_supported")
        url, state = session.create_authorization_url(
            metadata["authorization_endpoint"], code_verifier=verifier
        )
        callback = authorize(args.sso_token, url)
        token = session.fetch_token(
            metadata["token_endpoint"],
            authorization_response=callback,
            state=state,
            code_verifier=verifier,
            timeout=TIMEOUT,
        )
        token_type = token.get("token_type", "")
        expect(token_type.lower() == "bearer", f"token_type {token_type!r}")
        expect(isinstance(token.get("expires_in"), int) and token["expires_in"] > 0, "expires_in")
        expect(token.get("scope", "").split() == SCOPE.split(), f"scope {token.get('scope')!r}")
        return f"authlib {method}, PKCE S256, scope {token.get('scope')!r}"

    report.step("token exchange (OAuth2Session.fetch_token)", exchange)
    access_token = session.token["access_token"]

    jwks = jwt.PyJWKClient(metadata["jwks_uri"], timeout=TIMEOUT)
    claims = {}

    def verify():
        key = jwks.get_signing_key_from_jwt(access_token)
        header = jwt.get_unverified_header(access_token)
        expect(header["alg"] == args.alg, f"header alg {header['alg']}, expected {args.alg}")
        claims.update(
            jwt.decode(
                access_token,
                key,
                algorithms=[args.alg],
                audience=client_id,
                issuer=metadata["issuer"],
                options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
            )
        )
        return f"PyJWKClient + jwt.decode, {header['alg']}, kid {header['kid'][:12]}…"

    report.step("signature and claims (JWKS from the metadata only)", verify)

    def refuse_forgery():
        key = jwks.get_signing_key_from_jwt(access_token)
        try:
            jwt.decode(forged(access_token), key, algorithms=[args.alg], audience=client_id)
        except jwt.InvalidSignatureError:
            return "InvalidSignatureError"
        raise AssertionError("a token with a changed sub verified")

    report.step("a forged payload is refused", refuse_forgery)

    def introspect(active):
        def action():
            response = session.introspect_token(
                metadata["introspection_endpoint"],
                token=access_token,
                token_type_hint="access_token",
                timeout=TIMEOUT,
            )
            expect(response.status_code == 200, f"status {response.status_code}: {response.text}")
            body = response.json()
            expect(body.get("active") is active, f"active {body.get('active')!r}, not {active}")
            if active:
                expect(body.get("sub") == claims["sub"], f"sub {body.get('sub')!r}")
                expect(body.get("client_id") == client_id, f"client_id {body.get('client_id')}")
                expect(body.get("scope", "").split() == SCOPE.split(), f"scope {body.get('scope')}")
            return f"active: {str(active).lower()}"

        return action

    report.step("introspection (introspect_token)", introspect(True))

    def user_info(status):
        def action():
            response = session.get(metadata["userinfo_endpoint"], timeout=TIMEOUT)
            expect(response.status_code == status, f"status {response.status_code}, not {status}")
            if status == 200:
                body = response.json()
                expect(body.get("id") == claims["sub"], f"id {body.get('id')!r}")
                expect(body.get("sub") == claims["sub"], f"sub {body.get('sub')!r}")
                expect(body.get("email") == "zhangs@example.com", f"email {body.get('email')!r}")
            else:
                challenge = response.headers.get("WWW-Authenticate", "")
                expect('error="invalid_token"' in challenge, f"WWW-Authenticate {challenge!r}")
            return f"{status}"

        return action

    report.step("user info with the session's bearer token", user_info(200))

    def revoke():
        response = session.revoke_token(
            metadata["revocation_endpoint"],
            token=access_token,
            token_type_hint="access_token",
            timeout=TIMEOUT,
        )
        expect(response.status_code == 200, f"status {response.status_code}: {response.text}")
        return "200"

    report.step("revocation (revoke_token)", revoke)
    report.step("introspection after revocation", introspect(False))
    report.step("user info after revocation", user_info(401))


def requests_oauthlib_flow(args, metadata):
    """requests-oauthlib: Basic credentials as `requests` sends them, and oauthlib's check that
    the scope granted is the scope asked for (a changed scope raises `Warning`)."""
    report = Report("python requests-oauthlib")
    # Loopback over plain HTTP: oauthlib refuses anything but https without this.
    os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
    session = RequestsOAuth2Session(
        args.client_id, redirect_uri=args.redirect_uri, scope=SCOPE.split(), pkce="S256"
    )

    def exchange():
        url, _state = session.authorization_url(metadata["authorization_endpoint"])
        callback = authorize(args.sso_token, url)
        token = session.fetch_token(
            metadata["token_endpoint"],
            authorization_response=callback,
            client_secret=args.client_secret,
            timeout=TIMEOUT,
        )
        expect(token.get("scope") == SCOPE.split(), f"scope {token.get('scope')!r}")
        return f"client_secret_basic, PKCE S256, scope {token['scope']!r}"

    try:
        report.step("token exchange (OAuth2Session.fetch_token)", exchange)
    except StepFailed:
        pass
    return report.failures


def write_jwks(key_file, out):
    """The registry's side of private_key_jwt: the client's public key as a JWK Set."""
    with open(key_file, encoding="ascii") as pem:
        public = RSAKey.import_key(pem.read()).as_dict(private=False)
    with open(out, "w", encoding="ascii") as jwks:
        json.dump({"keys": [public]}, jwks)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", help="where the metadata is served (required)")
    parser.add_argument("--sso-token", help="the sso-token binary, for issue-code (required)")
    parser.add_argument("--alg", help="the JWS algorithm the server signs with (required)")
    parser.add_argument("--client-id", default="demo-app")
    parser.add_argument("--client-secret", default="demo-secret")
    parser.add_argument("--redirect-uri", default="http://localhost:3000/sso/callback")
    parser.add_argument(
        "--jwt-client-key",
        help="the RSA private key (PEM) of the private_key_jwt client --jwt-client-id",
    )
    parser.add_argument("--jwt-client-id", default="jwt-client")
    parser.add_argument(
        "--write-jwks",
        nargs=2,
        metavar=("KEY", "OUT"),
        help="write the public JWK Set of the RSA private key KEY (PEM) to OUT, and exit",
    )
    args = parser.parse_args()
    if args.write_jwks:
        return write_jwks(*args.write_jwks)
    for option in ("base_url", "sso_token", "alg"):
        if getattr(args, option) is None:
            parser.error(f"--{option.replace('_', '-')} is required")

    report = Report("python")
    try:
        def discover():
            response = requests.get(args.base_url + METADATA_PATH, timeout=TIMEOUT)
            response.raise_for_status()
            return response.json()

        metadata = report.step("RFC 8414 metadata", discover)
    except StepFailed:
        return 1
    failures = 0
    for method in ("client_secret_post", "client_secret_basic"):
        failures += flow(args, metadata, method, args.client_id, args.client_secret)
    if args.jwt_client_key:
        with open(args.jwt_client_key, encoding="ascii") as pem:
            key = pem.read()
        failures += flow(args, metadata, "private_key_jwt", args.jwt_client_id, key)
    failures += requests_oauthlib_flow(args, metadata)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
