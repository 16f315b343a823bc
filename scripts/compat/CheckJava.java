// Java's Google OAuth Client Library (google-oauth-client, with google-http-client and Gson)
// against a running sso-token, used as its documentation shows.
//
// Run by scripts/compat.sh as a single-file program (`java -cp <Debian's jars> CheckJava.java`).
// For each client authentication (HTTP Basic: BasicAuthentication; form parameters:
// ClientParametersAuthentication), an AuthorizationCodeFlow with PKCE enabled drives the
// authorization code flow as a web app does: its authorization URL (state, S256 challenge), its
// token request (the verifier), its Credential reading user info with the token. A replayed code
// must come back as the library's TokenResponseException with `invalid_grant` (after which the
// token of that code is revoked: user info 401), and a wrong secret as a 401 with
// `invalid_client`. One line PASS or FAIL per step; exit status 1 on any FAIL.
//
// The authorize service is simulated: the parameters of the library's authorization URL are
// written into Redis with `sso-token issue-code`.

import com.google.api.client.auth.oauth2.AuthorizationCodeFlow;
import com.google.api.client.auth.oauth2.BearerToken;
import com.google.api.client.auth.oauth2.ClientParametersAuthentication;
import com.google.api.client.auth.oauth2.Credential;
import com.google.api.client.auth.oauth2.TokenResponse;
import com.google.api.client.auth.oauth2.TokenResponseException;
import com.google.api.client.http.BasicAuthentication;
import com.google.api.client.http.GenericUrl;
import com.google.api.client.http.HttpExecuteInterceptor;
import com.google.api.client.http.HttpResponse;
import com.google.api.client.http.HttpResponseException;
import com.google.api.client.http.javanet.NetHttpTransport;
import com.google.api.client.json.GenericJson;
import com.google.api.client.json.JsonFactory;
import com.google.api.client.json.gson.GsonFactory;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

public class CheckJava {
    static final String METADATA_PATH = "/.well-known/oauth-authorization-server";
    static final List<String> SCOPES = Arrays.asList("user:basic", "user:contract");
    static final NetHttpTransport TRANSPORT = new NetHttpTransport();
    static final JsonFactory JSON = GsonFactory.getDefaultInstance();

    static String baseUrl, ssoToken, alg = "RS256";
    static String clientId = "demo-app", clientSecret = "demo-secret";
    static String redirectUri = "http://localhost:3000/sso/callback";
    static GenericJson metadata;

    interface Action {
        String run() throws Exception;
    }

    static class StepFailed extends Exception {}

    static class Report {
        final String label;
        int failures = 0;

        Report(String label) {
            this.label = label;
        }

        /** Runs action; prints PASS with its detail, or FAIL with its error and throws. */
        String step(String name, Action action) throws StepFailed {
            try {
                String detail = action.run();
                String suffix = detail == null || detail.isEmpty() ? "" : " (" + detail + ")";
                System.out.println("PASS  " + label + ": " + name + suffix);
                return detail;
            } catch (Exception | AssertionError error) {
                failures++;
                System.out.println("FAIL  " + label + ": " + name + ": " + error);
                throw new StepFailed();
            }
        }
    }

    static void expect(boolean condition, String message) {
        if (!condition) {
            throw new AssertionError(message);
        }
    }

    static String endpoint(String name) {
        return (String) metadata.get(name);
    }

    static AuthorizationCodeFlow flow(HttpExecuteInterceptor authentication) {
        return new AuthorizationCodeFlow.Builder(
                        BearerToken.authorizationHeaderAccessMethod(),
                        TRANSPORT,
                        JSON,
                        new GenericUrl(endpoint("token_endpoint")),
                        authentication,
                        clientId,
                        endpoint("authorization_endpoint"))
                .setScopes(SCOPES)
                .enablePKCE()
                .build();
    }

    /** The authorize service: writes the code for the request in the authorization URL. */
    static String authorize(String authorizationUrl) throws Exception {
        Map<String, String> query = new HashMap<>();
        for (String pair : URI.create(authorizationUrl).getRawQuery().split("&")) {
            String[] kv = pair.split("=", 2);
            query.put(
                    URLDecoder.decode(kv[0], StandardCharsets.UTF_8),
                    kv.length > 1 ? URLDecoder.decode(kv[1], StandardCharsets.UTF_8) : "");
        }
        expect("code".equals(query.get("response_type")), "response_type " + query.get("response_type"));
        List<String> command = new ArrayList<>(Arrays.asList(
                ssoToken, "issue-code",
                "--client", query.get("client_id"),
                "--redirect-uri", query.get("redirect_uri"),
                "--code-challenge", query.get("code_challenge"),
                "--code-challenge-method", query.get("code_challenge_method"),
                "--name", "Zhang San", "--email", "zhangs@example.com"));
        for (String scope : query.get("scope").split(" ")) {
            command.add("--scope");
            command.add(scope);
        }
        Process process = new ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.INHERIT).start();
        String code;
        try (BufferedReader out = new BufferedReader(new InputStreamReader(process.getInputStream()))) {
            code = out.readLine();
        }
        expect(process.waitFor() == 0 && code != null && !code.isBlank(), "issue-code failed");
        return code.trim();
    }

    /** The front channel: the flow's authorization URL and the code the authorize service gives. */
    static String newCode(AuthorizationCodeFlow flow) throws Exception {
        byte[] state = new byte[16];
        new SecureRandom().nextBytes(state);
        String url = flow.newAuthorizationUrl()
                .setRedirectUri(redirectUri)
                .setState(Base64.getUrlEncoder().withoutPadding().encodeToString(state))
                .build();
        return authorize(url);
    }

    static String userInfo(Credential credential, int status) throws Exception {
        HttpResponse response = TRANSPORT.createRequestFactory(credential)
                .buildGetRequest(new GenericUrl(endpoint("userinfo_endpoint")))
                .setParser(JSON.createJsonObjectParser())
                .setThrowExceptionOnExecuteError(false)
                .execute();
        try {
            expect(response.getStatusCode() == status, "status " + response.getStatusCode() + ", not " + status);
            if (status != 200) {
                String challenge = response.getHeaders().getAuthenticate();
                expect(challenge != null && challenge.contains("error=\"invalid_token\""),
                        "WWW-Authenticate " + challenge);
                return status + " invalid_token";
            }
            GenericJson user = response.parseAs(GenericJson.class);
            expect("zhangs@example.com".equals(user.get("email")), "email " + user.get("email"));
            return "sub " + user.get("sub");
        } finally {
            response.disconnect();
        }
    }

    static String errorOf(TokenResponseException error) {
        return error.getDetails() == null ? null : error.getDetails().getError();
    }

    static int run(String method, HttpExecuteInterceptor authentication, HttpExecuteInterceptor wrong) {
        Report report = new Report("java " + method + " " + alg);
        try {
            AuthorizationCodeFlow flow = flow(authentication);
            String code = newCode(flow);
            TokenResponse[] token = new TokenResponse[1];
            report.step("token exchange (AuthorizationCodeFlow, PKCE S256)", () -> {
                token[0] = flow.newTokenRequest(code).setRedirectUri(redirectUri).execute();
                expect("bearer".equalsIgnoreCase(token[0].getTokenType()), "token_type " + token[0].getTokenType());
                expect(token[0].getExpiresInSeconds() != null && token[0].getExpiresInSeconds() == 1800,
                        "expires_in " + token[0].getExpiresInSeconds());
                expect(String.join(" ", SCOPES).equals(token[0].getScope()), "scope " + token[0].getScope());
                expect(token[0].get("username") != null && token[0].get("account_id") != null,
                        "username or account_id missing");
                return method + ", scope '" + token[0].getScope() + "'";
            });
            Credential credential = flow.createAndStoreCredential(token[0], null);
            report.step("user info (Credential, Bearer header)", () -> userInfo(credential, 200));
            report.step("a replayed code is a TokenResponseException with invalid_grant", () -> {
                try {
                    flow.newTokenRequest(code).setRedirectUri(redirectUri).execute();
                } catch (TokenResponseException error) {
                    expect(error.getStatusCode() == 400 && "invalid_grant".equals(errorOf(error)),
                            error.getStatusCode() + " " + error.getContent());
                    return "400 invalid_grant";
                }
                throw new AssertionError("a replayed code was exchanged");
            });
            report.step("the replay revoked the code's token: user info is 401", () -> userInfo(credential, 401));
            report.step("a wrong secret is 401 invalid_client", () -> {
                AuthorizationCodeFlow wrongFlow = flow(wrong);
                String other = newCode(wrongFlow);
                try {
                    wrongFlow.newTokenRequest(other).setRedirectUri(redirectUri).execute();
                } catch (TokenResponseException error) {
                    // The JDK's HttpURLConnection (NetHttpTransport) drops a 401's body when the
                    // request's was streamed ("cannot retry due to server authentication, in
                    // streaming mode"), whatever the server sends: the status and the challenge
                    // are what reaches the library; the error code only where the body does.
                    String challenge = error.getHeaders().getAuthenticate();
                    String reported = errorOf(error);
                    expect(error.getStatusCode() == 401 && challenge != null && challenge.startsWith("Basic ")
                                    && (reported == null || reported.equals("invalid_client")),
                            error.getStatusCode() + " " + challenge + " " + error.getContent());
                    return "401, WWW-Authenticate " + challenge + (reported == null ? ", no body" : ", " + reported);
                }
                throw new AssertionError("a wrong secret was accepted");
            });
        } catch (StepFailed stop) {
            // the flow stops at its first failed step
        } catch (Exception error) {
            report.failures++;
            System.out.println("FAIL  " + report.label + ": " + error);
        }
        return report.failures;
    }

    public static void main(String[] args) throws Exception {
        for (int i = 0; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--base-url" -> baseUrl = args[i + 1];
                case "--sso-token" -> ssoToken = args[i + 1];
                case "--alg" -> alg = args[i + 1];
                default -> throw new IllegalArgumentException("unknown option " + args[i]);
            }
        }
        try {
            metadata = TRANSPORT.createRequestFactory()
                    .buildGetRequest(new GenericUrl(baseUrl + METADATA_PATH))
                    .setParser(JSON.createJsonObjectParser())
                    .execute()
                    .parseAs(GenericJson.class);
        } catch (HttpResponseException error) {
            System.out.println("FAIL  java " + alg + ": metadata: " + error);
            System.exit(1);
        }
        int failures = run("client_secret_basic",
                        new BasicAuthentication(clientId, clientSecret),
                        new BasicAuthentication(clientId, clientSecret + "x"))
                + run("client_secret_post",
                        new ClientParametersAuthentication(clientId, clientSecret),
                        new ClientParametersAuthentication(clientId, clientSecret + "x"));
        System.exit(failures == 0 ? 0 : 1);
    }
}
