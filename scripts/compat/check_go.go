// Go's standard OAuth 2.0 client, golang.org/x/oauth2, against a running sso-token, used as its
// documentation shows.
//
// Run by scripts/compat.sh (built in GOPATH mode against Debian's golang-golang-x-oauth2-dev).
// For each of the library's three client authentication styles (HTTP Basic, form parameters,
// and auto-detection, which tries Basic first), oauth2.Config drives the authorization code
// flow as a web app does: an authorization URL with state and a PKCE S256 challenge, the token
// request with the verifier, then oauth2.Config.Client reads user info with the token. A replayed
// code must come back as the library's *oauth2.RetrieveError with `invalid_grant`, and a wrong
// secret as a 401 with `invalid_client`. One line PASS or FAIL per step; exit status 1 on any
// FAIL.
//
// The authorize service is simulated: the parameters of the library's authorization URL are
// written into Redis with `sso-token issue-code`.
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

const (
	metadataPath = "/.well-known/oauth-authorization-server"
	scope        = "user:basic user:contract"
	timeout      = 10 * time.Second
)

type args struct {
	baseURL, ssoToken, alg, clientID, clientSecret, redirectURI string
}

type report struct {
	label    string
	failures int
}

// step runs action and prints PASS with its detail, or FAIL with its error; false on FAIL.
func (r *report) step(name string, action func() (string, error)) bool {
	detail, err := action()
	if err != nil {
		r.failures++
		fmt.Printf("FAIL  %s: %s: %v\n", r.label, name, err)
		return false
	}
	if detail != "" {
		detail = " (" + detail + ")"
	}
	fmt.Printf("PASS  %s: %s%s\n", r.label, name, detail)
	return true
}

func random(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// authorize is the authorize service: it writes the code for the request in authURL.
func authorize(a args, authURL string) (string, error) {
	u, err := url.Parse(authURL)
	if err != nil {
		return "", err
	}
	q := u.Query()
	if q.Get("response_type") != "code" {
		return "", fmt.Errorf("response_type %q", q.Get("response_type"))
	}
	command := []string{
		"issue-code",
		"--client", q.Get("client_id"),
		"--redirect-uri", q.Get("redirect_uri"),
		"--code-challenge", q.Get("code_challenge"),
		"--code-challenge-method", q.Get("code_challenge_method"),
		"--name", "Zhang San", "--email", "zhangs@example.com",
	}
	for _, s := range strings.Fields(q.Get("scope")) {
		command = append(command, "--scope", s)
	}
	out, err := exec.Command(a.ssoToken, command...).Output()
	if err != nil {
		return "", fmt.Errorf("issue-code: %w", err)
	}
	code := strings.TrimSpace(string(out))
	if code == "" {
		return "", errors.New("issue-code printed no code")
	}
	return code, nil
}

// pkce is a verifier and its S256 challenge (RFC 7636 §4.1, §4.2).
func pkce() (verifier, challenge string) {
	verifier = random(48)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

func config(a args, metadata map[string]any, style oauth2.AuthStyle, secret string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     a.clientID,
		ClientSecret: secret,
		Endpoint: oauth2.Endpoint{
			AuthURL:   fmt.Sprint(metadata["authorization_endpoint"]),
			TokenURL:  fmt.Sprint(metadata["token_endpoint"]),
			AuthStyle: style,
		},
		RedirectURL: a.redirectURI,
		Scopes:      strings.Fields(scope),
	}
}

// newCode runs the front channel: the library's authorization URL, the authorize service.
func newCode(a args, conf *oauth2.Config) (code, verifier string, err error) {
	verifier, challenge := pkce()
	state := random(16)
	authURL := conf.AuthCodeURL(state,
		oauth2.SetAuthURLParam("code_challenge", challenge),
		oauth2.SetAuthURLParam("code_challenge_method", "S256"))
	code, err = authorize(a, authURL)
	return code, verifier, err
}

func flow(a args, metadata map[string]any, style oauth2.AuthStyle, name string) int {
	r := &report{label: "go " + name}
	ctx, cancel := context.WithTimeout(context.Background(), 4*timeout)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Timeout: timeout})
	conf := config(a, metadata, style, a.clientSecret)

	var token *oauth2.Token
	var code string
	ok := r.step("token exchange (Config.Exchange, PKCE S256)", func() (string, error) {
		var verifier string
		var err error
		if code, verifier, err = newCode(a, conf); err != nil {
			return "", err
		}
		token, err = conf.Exchange(ctx, code, oauth2.SetAuthURLParam("code_verifier", verifier))
		if err != nil {
			return "", err
		}
		if !strings.EqualFold(token.TokenType, "bearer") || token.Type() != "Bearer" {
			return "", fmt.Errorf("token_type %q", token.TokenType)
		}
		if left := time.Until(token.Expiry); left < 1700*time.Second || left > 1800*time.Second {
			return "", fmt.Errorf("expiry in %v, expected ~1800 s", left)
		}
		if got := fmt.Sprint(token.Extra("scope")); got != scope {
			return "", fmt.Errorf("scope %q", got)
		}
		if token.Extra("username") == nil || token.Extra("account_id") == nil {
			return "", errors.New("username or account_id missing from the response")
		}
		return fmt.Sprintf("%s, scope %q, expires %s", name, token.Extra("scope"),
			token.Expiry.UTC().Format(time.RFC3339)), nil
	})
	if !ok {
		return r.failures
	}

	userInfo := func(status int) func() (string, error) {
		return func() (string, error) {
			client := conf.Client(ctx, token)
			response, err := client.Get(fmt.Sprint(metadata["userinfo_endpoint"]))
			if err != nil {
				return "", err
			}
			defer response.Body.Close()
			body, err := io.ReadAll(response.Body)
			if err != nil {
				return "", err
			}
			if response.StatusCode != status {
				return "", fmt.Errorf("status %d, not %d: %s", response.StatusCode, status, body)
			}
			if status != 200 {
				challenge := response.Header.Get("WWW-Authenticate")
				if !strings.Contains(challenge, `error="invalid_token"`) {
					return "", fmt.Errorf("WWW-Authenticate %q", challenge)
				}
				return fmt.Sprintf("%d invalid_token", status), nil
			}
			var user map[string]any
			if err := json.Unmarshal(body, &user); err != nil {
				return "", err
			}
			if user["email"] != "zhangs@example.com" || user["sub"] == nil {
				return "", fmt.Errorf("user info %s", body)
			}
			return fmt.Sprintf("sub %v", user["sub"]), nil
		}
	}
	r.step("user info (Config.Client, Bearer)", userInfo(200))

	r.step("a replayed code is a RetrieveError with invalid_grant", func() (string, error) {
		_, err := conf.Exchange(ctx, code)
		return refused(err, 400, "invalid_grant")
	})

	r.step("the replay revoked the code's token: user info is 401", userInfo(401))

	r.step("a wrong secret is 401 invalid_client", func() (string, error) {
		wrong := config(a, metadata, style, a.clientSecret+"x")
		code, verifier, err := newCode(a, wrong)
		if err != nil {
			return "", err
		}
		_, err = wrong.Exchange(ctx, code, oauth2.SetAuthURLParam("code_verifier", verifier))
		return refused(err, 401, "invalid_client")
	})
	return r.failures
}

// refused checks that err is the library's *oauth2.RetrieveError for an RFC 6749 §5.2 error
// response with that status and error code.
func refused(err error, status int, code string) (string, error) {
	var retrieve *oauth2.RetrieveError
	if !errors.As(err, &retrieve) {
		return "", fmt.Errorf("not a RetrieveError: %v", err)
	}
	var body struct {
		Error string `json:"error"`
	}
	if retrieve.Response.StatusCode != status || json.Unmarshal(retrieve.Body, &body) != nil ||
		body.Error != code {
		return "", fmt.Errorf("%d %s", retrieve.Response.StatusCode, retrieve.Body)
	}
	return fmt.Sprintf("%d %s", status, code), nil
}

func main() {
	var a args
	flag.StringVar(&a.baseURL, "base-url", "", "the server's base URL")
	flag.StringVar(&a.ssoToken, "sso-token", "", "the sso-token binary (for issue-code)")
	flag.StringVar(&a.alg, "alg", "RS256", "the signing algorithm (for the labels)")
	flag.StringVar(&a.clientID, "client-id", "demo-app", "")
	flag.StringVar(&a.clientSecret, "client-secret", "demo-secret", "")
	flag.StringVar(&a.redirectURI, "redirect-uri", "http://localhost:3000/sso/callback", "")
	flag.Parse()

	response, err := (&http.Client{Timeout: timeout}).Get(a.baseURL + metadataPath)
	if err != nil {
		fmt.Printf("FAIL  go %s: metadata: %v\n", a.alg, err)
		os.Exit(1)
	}
	var metadata map[string]any
	err = json.NewDecoder(response.Body).Decode(&metadata)
	response.Body.Close()
	if err != nil {
		fmt.Printf("FAIL  go %s: metadata: %v\n", a.alg, err)
		os.Exit(1)
	}
	failures := 0
	for _, style := range []struct {
		style oauth2.AuthStyle
		name  string
	}{
		{oauth2.AuthStyleInHeader, "client_secret_basic"},
		{oauth2.AuthStyleInParams, "client_secret_post"},
		{oauth2.AuthStyleAutoDetect, "auto-detected"},
	} {
		failures += flow(a, metadata, style.style, style.name+" "+a.alg)
	}
	if failures > 0 {
		os.Exit(1)
	}
}
