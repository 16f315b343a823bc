# Ruby's oauth2 gem (the client under OmniAuth's oauth2 strategies) against a running sso-token,
# used as its documentation shows.
#
# Run by scripts/compat.sh with Debian's ruby-oauth2 (1.4.4, on Faraday 1.x). For each of the
# gem's two client authentications (auth_scheme :basic_auth, an HTTP Basic header, and
# :request_body, client_id and client_secret in the form, 1.4's default), an OAuth2::Client
# drives the authorization code flow as a web app does: client.auth_code.authorize_url with
# state and a PKCE S256 challenge, client.auth_code.get_token with the verifier, then the
# OAuth2::AccessToken reads user info. A replayed code must come back as the gem's OAuth2::Error
# with the code `invalid_grant` (after which the token of that code is revoked: user info 401),
# and a wrong secret as a 401 with `invalid_client`. One line PASS or FAIL per step; exit
# status 1 on any FAIL.
#
# The authorize service is simulated: the parameters of the gem's authorization URL are written
# into Redis with `sso-token issue-code`.

require 'base64'
require 'digest'
require 'json'
require 'net/http'
require 'oauth2'
require 'open3'
require 'optparse'
require 'securerandom'
require 'time'
require 'uri'

METADATA_PATH = '/.well-known/oauth-authorization-server'
SCOPE = 'user:basic user:contract'
TIMEOUT = 10

Args = Struct.new(:base_url, :sso_token, :alg, :client_id, :client_secret, :redirect_uri)

class StepFailed < StandardError; end

# A flow's steps: PASS with the detail, or FAIL with the error.
class Report
  attr_reader :failures

  def initialize(label)
    @label = label
    @failures = 0
  end

  # Runs the block, which returns a detail or raises; false on FAIL.
  def step(name)
    detail = yield
    suffix = detail.nil? || detail.empty? ? '' : " (#{detail})"
    puts "PASS  #{@label}: #{name}#{suffix}"
    true
  rescue StandardError => e
    @failures += 1
    puts "FAIL  #{@label}: #{name}: #{e.class}: #{e.message.lines.first&.chomp}"
    false
  end
end

def expect(condition, message)
  raise StepFailed, message unless condition
end

def random(bytes)
  Base64.urlsafe_encode64(SecureRandom.random_bytes(bytes), padding: false)
end

# The authorize service: writes the code for the request in the authorization URL.
def authorize(args, url)
  query = URI.decode_www_form(URI.parse(url).query).to_h
  expect(query['response_type'] == 'code', "response_type #{query['response_type'].inspect}")
  command = [args.sso_token, 'issue-code',
             '--client', query['client_id'],
             '--redirect-uri', query['redirect_uri'],
             '--code-challenge', query['code_challenge'],
             '--code-challenge-method', query['code_challenge_method'],
             '--name', 'Zhang San', '--email', 'zhangs@example.com']
  query['scope'].split(' ').each { |scope| command.push('--scope', scope) }
  out, status = Open3.capture2(*command)
  expect(status.success? && !out.strip.empty?, "issue-code failed (#{status})")
  out.strip
end

# The front channel: the gem's authorization URL (state, S256 challenge) and the code the
# authorize service gives; the code and its PKCE verifier (RFC 7636 §4.1, §4.2).
def new_code(args, client)
  verifier = random(48)
  challenge = Base64.urlsafe_encode64(Digest::SHA256.digest(verifier), padding: false)
  url = client.auth_code.authorize_url(redirect_uri: args.redirect_uri, scope: SCOPE,
                                       state: random(16), code_challenge: challenge,
                                       code_challenge_method: 'S256')
  [authorize(args, url), verifier]
end

def client(args, metadata, scheme, secret)
  OAuth2::Client.new(args.client_id, secret,
                     site: args.base_url,
                     authorize_url: metadata['authorization_endpoint'],
                     token_url: metadata['token_endpoint'],
                     auth_scheme: scheme,
                     connection_opts: { request: { timeout: TIMEOUT, open_timeout: TIMEOUT } })
end

# The gem's error for an RFC 6749 §5.2 error response: its status and error code.
def refused(status, code)
  yield
  raise StepFailed, 'the request succeeded'
rescue OAuth2::Error => e
  expect(e.response.status == status && e.code == code, "#{e.response.status} #{e.response.body}")
  "#{status} #{code}"
end

def user_info(metadata, token, status)
  response = token.get(metadata['userinfo_endpoint'])
  expect(status == 200, "status #{response.status}, not #{status}")
  user = response.parsed
  expect(user.is_a?(Hash) && user['email'] == 'zhangs@example.com' && user['sub'],
         "user info #{response.body}")
  "sub #{user['sub']}"
rescue OAuth2::Error => e
  expect(e.response.status == status,
         "status #{e.response.status}, not #{status}: #{e.response.body}")
  challenge = e.response.headers['www-authenticate'].to_s
  expect(challenge.include?('error="invalid_token"'), "WWW-Authenticate #{challenge.inspect}")
  "#{status} invalid_token"
end

def flow(args, metadata, scheme, name)
  report = Report.new("ruby #{name} #{args.alg}")
  oauth = client(args, metadata, scheme, args.client_secret)
  token = nil
  code = verifier = nil
  exchange = "token exchange (auth_code.get_token, auth_scheme #{scheme.inspect}, PKCE S256)"
  ok = report.step(exchange) do
    code, verifier = new_code(args, oauth)
    token = oauth.auth_code.get_token(code, redirect_uri: args.redirect_uri,
                                            code_verifier: verifier)
    expect(!token.token.empty?, 'no access_token')
    header = JSON.parse(Base64.urlsafe_decode64(token.token.split('.').first))
    expect(header['alg'] == args.alg, "alg #{header['alg']}")
    token_type = token.params['token_type']
    expect(token_type.to_s.casecmp?('bearer'), "token_type #{token_type.inspect}")
    expect(token.expires_in == 1800, "expires_in #{token.expires_in.inspect}")
    left = token.expires_at - Time.now.to_i
    expect(left.between?(1700, 1800), "expires_at in #{left} s, expected ~1800 s")
    expect(token.params['scope'] == SCOPE, "scope #{token.params['scope'].inspect}")
    expect(token.params['username'] && token.params['account_id'], 'username or account_id missing')
    "#{name}, scope '#{token.params['scope']}', expires_at #{Time.at(token.expires_at).utc.iso8601}"
  end
  return report.failures unless ok

  report.step('user info (AccessToken#get, Bearer header)') { user_info(metadata, token, 200) }

  report.step('a replayed code is an OAuth2::Error with invalid_grant') do
    refused(400, 'invalid_grant') do
      oauth.auth_code.get_token(code, redirect_uri: args.redirect_uri, code_verifier: verifier)
    end
  end

  report.step("the replay revoked the code's token: user info is 401") do
    user_info(metadata, token, 401)
  end

  report.step('a wrong secret is 401 invalid_client') do
    wrong = client(args, metadata, scheme, "#{args.client_secret}x")
    other, other_verifier = new_code(args, wrong)
    refused(401, 'invalid_client') do
      wrong.auth_code.get_token(other, redirect_uri: args.redirect_uri,
                                       code_verifier: other_verifier)
    end
  end
  report.failures
end

def main
  args = Args.new(nil, nil, 'RS256', 'demo-app', 'demo-secret',
                  'http://localhost:3000/sso/callback')
  OptionParser.new do |parser|
    parser.on('--base-url URL', "the server's base URL") { |v| args.base_url = v }
    parser.on('--sso-token PATH', 'the sso-token binary (issue-code)') { |v| args.sso_token = v }
    parser.on('--alg ALG', 'the signing algorithm') { |v| args.alg = v }
    parser.on('--client-id ID') { |v| args.client_id = v }
    parser.on('--client-secret SECRET') { |v| args.client_secret = v }
    parser.on('--redirect-uri URI') { |v| args.redirect_uri = v }
  end.parse!

  begin
    uri = URI(args.base_url + METADATA_PATH)
    response = Net::HTTP.start(uri.host, uri.port,
                               open_timeout: TIMEOUT, read_timeout: TIMEOUT) do |http|
      http.get(uri.request_uri)
    end
    raise "status #{response.code}" unless response.code == '200'
    metadata = JSON.parse(response.body)
  rescue StandardError => e
    puts "FAIL  ruby #{args.alg}: metadata: #{e.message}"
    exit 1
  end
  schemes = [[:basic_auth, 'client_secret_basic'], [:request_body, 'client_secret_post']]
  failures = schemes.sum { |scheme, name| flow(args, metadata, scheme, name) }
  exit(failures.zero? ? 0 : 1)
end

main
