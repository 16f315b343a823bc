use std::collections::HashSet;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use serde_json::Value;

use super::public::MAX_RSA_BITS;
use super::*;
use crate::tokens::KeyKind;

/// RFC 7638 §3.1: the thumbprint of the RFC 7517 example RSA key, and that key's `n`.
const RFC7638_THUMBPRINT: &str = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
const RFC7638_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFF\
                         xuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt\
                         7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6q\
                         MQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHa\
                         Q-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
/// RFC 8037 Appendix A.2 (public key) and A.3 (its RFC 7638 thumbprint).
const RFC8037_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
const RFC8037_THUMBPRINT: &str = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";

/// RFC 7517 Appendix A.2's RSA private key, whose public half is RFC 7638 §3.1's example;
/// written as PKCS#8 from the RFC's JWK members (p * q == n checked at writing time).
const RFC7517_RSA_PKCS8: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDS/HtqCh5sZxBK\n\
64+Isldmm032ed2tCZtcSmzZqIAVtaEzvwuFbHhxtt8AC1VPzrPC7VErto8UXG6E\n\
NHUvq1Khz8EkQI95tYpFeMFkKIVXifeiSeOEyy2fri1n/Zb7kmwZjgdzmf3IFcCv\n\
CX3eWq3v9E3nDoJ/SHhDJDm/7rlgaNBHT8UNbZC/OpjfrxBAyJwC1pKrOzwolmCd\n\
hv1zt3TOB0BkfO7qoxC9EvmFqOufWf3UJs6lshIPTyo0vKt2S35sVNaEAji8xAWH\n\
pZ5m7R8ziUV3Y1xHCvdc+Swg0dpD4b/EGeIipvDQuzWMXjj5ywUK6v6QSBTxrBqk\n\
nMqeoMqDAgMBAAECggEAX4cTteJY/gn4FYPsXB8rdXix5vwsg1FLN5E3EaG6RJoV\n\
H+HLLKD9M7dx5oo7GURknchnrRweUkC7hT5fJLM0WbFAKNLWY2vv7B6NqXSzUvxT\n\
0/YSfqijwp3RTzlBaCxWp4doFk5N2o8Gy/nHNKroADIkJ46pRUohsXywbReAdYaM\n\
wFs9tv8d/cPVY3i07a3t8MN6TNwm0dSawm9v47UiCl3Sk5ZiG7xojPLu4sbg1U2j\n\
x4IBTNBznbJSzFHK66jT8bgkuqsk0GjskDJk19Z4qwjwbsnn4j2WBii3RL+Us2lG\n\
VkY8fkFzme1z0HbIkfz0Y6mqnOYtqc0X4jfcKoAC8QKBgQDzeL7si8wZegxcKyS/\n\
vdMqvzrfsWI7tnbvO/yiPqltZRDIs9AFDG09WfAPbRH7rR5MOYPa6Ocy3k+ioyub\n\
xF+Y2FVYO2OMyYIyM6lJeJwUePtc65UhhDKpVaVYSHp03foZVliT3c3wFz29jjXH\n\
LwH1HPM4ZVDNe80S+fs7SdVt+wKBgQDd185H1y5ir7RL6aQUvOAi2AwR8XMHareF\n\
Z6Ey4bSgK6qdve+hsvK6aqNVlA7V0it3CBOcJ2ljMFw59bmvfvQAVeOJZ+380YSK\n\
i+ieLOEqmj1VVLvxPMWDGQh2t5xF7Oxn7WRh3+zWoNvG2QMSB8AhMAb0tScAO6fi\n\
8hxvrJ6XGQKBgBuLD15HOmGvcvKCVvfyC4+MbqabtJc4vx+1U5EvMY+UnV93KBNK\n\
IpmMMSItnpkwLntFDmuXaYBRsgSeHPLUNlReNNl0boCg0z/GpGIRaObQAO+0HvzZ\n\
rbmGXNwt5tyNuBthr0ebEg8VMgDds6vC35/RFJrOq2Nzm/GHoipE4gY9AoGBALPZ\n\
QB/X4IAbKBUfDmnNkfxNoMNvNq09pBjgIbyJZRExNXn6wOoblFLzHwXDKZ/Janlu\n\
r8852GOUkkBe6THQv2oCN5xvCG6dQVG9CVIq2kTalHy4XEG/3fRheA4e3u+Fm0bK\n\
G0aJ7o02DdcQmj+kzutY71q1/i9fLcV8OPeEP3IJAoGAGyM/p6JrXySiz1toFgKb\n\
WV+JdI3jQ4ypu9rbMWx3rQJBfmt0FoYzgUIZEVFEcOqwemRN81zoDAaa+Bk0KWNG\n\
DjJHZDdDmFhW3AN7lI+puxk/mHZGJ11rxyR8O55XLSe3SPmRfKwZI6yU24ZxvQKF\n\
YItdldUKGzO6Ia6zTKhAVRU=\n\
-----END PRIVATE KEY-----\n\
";

/// The same key as PKCS#1 (`openssl rsa -traditional`).
const RFC7517_RSA_PKCS1: &str = "\
-----BEGIN RSA PRIVATE KEY-----\n\
MIIEowIBAAKCAQEA0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78L\n\
hWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc/BJECPebWKRXjBZCiFV4n3oknj\n\
hMstn64tZ/2W+5JsGY4Hc5n9yBXArwl93lqt7/RN5w6Cf0h4QyQ5v+65YGjQR0/F\n\
DW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbO\n\
pbISD08qNLyrdkt+bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ+G/xBni\n\
Iqbw0Ls1jF44+csFCur+kEgU8awapJzKnqDKgwIDAQABAoIBAF+HE7XiWP4J+BWD\n\
7FwfK3V4seb8LINRSzeRNxGhukSaFR/hyyyg/TO3ceaKOxlEZJ3IZ60cHlJAu4U+\n\
XySzNFmxQCjS1mNr7+wejal0s1L8U9P2En6oo8Kd0U85QWgsVqeHaBZOTdqPBsv5\n\
xzSq6AAyJCeOqUVKIbF8sG0XgHWGjMBbPbb/Hf3D1WN4tO2t7fDDekzcJtHUmsJv\n\
b+O1Igpd0pOWYhu8aIzy7uLG4NVNo8eCAUzQc52yUsxRyuuo0/G4JLqrJNBo7JAy\n\
ZNfWeKsI8G7J5+I9lgYot0S/lLNpRlZGPH5Bc5ntc9B2yJH89GOpqpzmLanNF+I3\n\
3CqAAvECgYEA83i+7IvMGXoMXCskv73TKr8637FiO7Z27zv8oj6pbWUQyLPQBQxt\n\
PVnwD20R+60eTDmD2ujnMt5PoqMrm8RfmNhVWDtjjMmCMjOpSXicFHj7XOuVIYQy\n\
qVWlWEh6dN36GVZYk93N8Bc9vY41xy8B9RzzOGVQzXvNEvn7O0nVbfsCgYEA3dfO\n\
R9cuYq+0S+mkFLzgItgMEfFzB2q3hWehMuG0oCuqnb3vobLyumqjVZQO1dIrdwgT\n\
nCdpYzBcOfW5r370AFXjiWft/NGEiovonizhKpo9VVS78TzFgxkIdrecRezsZ+1k\n\
Yd/s1qDbxtkDEgfAITAG9LUnADun4vIcb6yelxkCgYAbiw9eRzphr3Lyglb38guP\n\
jG6mm7SXOL8ftVORLzGPlJ1fdygTSiKZjDEiLZ6ZMC57RQ5rl2mAUbIEnhzy1DZU\n\
XjTZdG6AoNM/xqRiEWjm0ADvtB782a25hlzcLebcjbgbYa9HmxIPFTIA3bOrwt+f\n\
0RSazqtjc5vxh6IqROIGPQKBgQCz2UAf1+CAGygVHw5pzZH8TaDDbzatPaQY4CG8\n\
iWURMTV5+sDqG5RS8x8FwymfyWp5bq/POdhjlJJAXukx0L9qAjecbwhunUFRvQlS\n\
KtpE2pR8uFxBv930YXgOHt7vhZtGyhtGie6NNg3XEJo/pM7rWO9atf4vXy3FfDj3\n\
hD9yCQKBgBsjP6eia18kos9baBYCm1lfiXSN40OMqbva2zFsd60CQX5rdBaGM4FC\n\
GRFRRHDqsHpkTfNc6AwGmvgZNCljRg4yR2Q3Q5hYVtwDe5SPqbsZP5h2Ridda8ck\n\
fDueVy0nt0j5kXysGSOslNuGcb0ChWCLXZXVChszuiGus0yoQFUV\n\
-----END RSA PRIVATE KEY-----\n\
";

/// RFC 8037 Appendix A.1's Ed25519 private key (`d`), as PKCS#8.
const RFC8037_ED25519_PKCS8: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n\
-----END PRIVATE KEY-----\n\
";

/// A throwaway P-256 key as `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`
/// writes it.
const OPENSSL_P256_PKCS8: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgZeE4vZ1VX9Ps7Hj2\n\
Tro6f1IrukKD0GHiaL5XCTCVt16hRANCAAQ/CEz4D45azeLt9R8hFxra/BycAkcf\n\
5c34ZAVK26lmd1oJviz3+Qo0jlSClXYuxRjD654KZHV8flqbXhaoLHKJ\n\
-----END PRIVATE KEY-----\n\
";

/// [`OPENSSL_P256_PKCS8`] as SEC1, with the parameters block that `openssl ecparam -genkey`
/// writes before it (`openssl ec -param_out`).
const OPENSSL_P256_SEC1: &str = "\
-----BEGIN EC PARAMETERS-----\n\
BggqhkjOPQMBBw==\n\
-----END EC PARAMETERS-----\n\
-----BEGIN EC PRIVATE KEY-----\n\
MHcCAQEEIGXhOL2dVV/T7Ox49k66On9SK7pCg9Bh4mi+VwkwlbdeoAoGCCqGSM49\n\
AwEHoUQDQgAEPwhM+A+OWs3i7fUfIRca2vwcnAJHH+XN+GQFStupZndaCb4s9/kK\n\
NI5UgpV2LsUYw+ueCmR1fH5am14WqCxyiQ==\n\
-----END EC PRIVATE KEY-----\n\
";

/// A throwaway P-384 key as SEC1 (`openssl ecparam -name secp384r1 -genkey -noout`).
const OPENSSL_P384_SEC1: &str = "\
-----BEGIN EC PRIVATE KEY-----\n\
MIGkAgEBBDDnx5yshzMJvCIi1v4Fz29em9Ehf9a/WqDYAA0gB4eJ7TLymQKDFWla\n\
bJ0QKSsPD7ugBwYFK4EEACKhZANiAATxD8rmGIP8QbMt12C7XDs4wMZ7qv//HCIg\n\
kYdL9j4nejR+THKkaQG8grMZlz/I7PfzCEsW1xdCjVlfAsfzzCymZ0+c9acodqK/\n\
xaY+noujykoj7EU+X3NERTidVgErLD4=\n\
-----END EC PRIVATE KEY-----\n\
";

/// A throwaway 1024-bit RSA key (`openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024`).
const RSA_1024_PKCS8: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIICdQIBADANBgkqhkiG9w0BAQEFAASCAl8wggJbAgEAAoGBAOu+CVmkDtS5VlLe\n\
1bngOOj0x3jX5K3mjw7TgEn4O0mFcRei6SjWtygfA8fg3Oak+CqS7D4XfLbIOuwT\n\
6EEqH8nqVsAGifzjiLgeVcLDTtFza5ax0/JrJG5/plPNrSAuQ+hL3onRKeBttCP1\n\
vFMxpFhp/dBVndB8qbnNc/T1K/HnAgMBAAECgYARd6tJsRZIPNNgoJJFi4+r8zc0\n\
hQq0t/ixqIpA8Nuzvud6UN/l3sMDfgjRrp+vl1msDebjUuoywPNcurzi1zQzpXOS\n\
G0D2+l3Ms8/HL+q/Yb6yrKmINtJ+iJ+YY1RXs9kCL1Si75HPXVeuGzouE7r9sIj5\n\
FkxUE8fxnrK4RL2vgQJBAP6yhI6LT2I9uQcmCXeYkul43aXvFFrXPyL49khOdUo7\n\
s/0HgcQJVMVnNeBHNltYQXRBwPTCCvg/ds+A9g6/0nkCQQDs8rNOgHU8t9soPee0\n\
M/Yu88FN4uxiZjUaI9KcvPqXPJrGQZ0gsvKbss+Ql6CIN8VggcYIbZIO9Sc6c67L\n\
9c9fAkBqMoku3ktlTRMfNe7wnP90td7FV2CHWASNUn1uPLiPEUHFGSI0WSetf5Fp\n\
SIgTokL4dIo+A8KLK/sgHkd6cuURAkBZ4nOMmwReRSyY5mroHDIOe59fyW58oWMR\n\
iHdTyAiTqITaInfVuKx5zeoZYrueEPIJ+xDBj7cxf2QjM1EixBunAkBvAvMPCES/\n\
2icTy/C7iM3FfZMrjEyIyVtHEiNkVBh538y+nmSu7WVVGgIGwZAF/nkC6UMGcFJM\n\
AVVvdBH58S+P\n\
-----END PRIVATE KEY-----\n\
";

/// The same 1024-bit key as PKCS#1.
const RSA_1024_PKCS1: &str = "\
-----BEGIN RSA PRIVATE KEY-----\n\
MIICWwIBAAKBgQDrvglZpA7UuVZS3tW54Djo9Md41+St5o8O04BJ+DtJhXEXouko\n\
1rcoHwPH4NzmpPgqkuw+F3y2yDrsE+hBKh/J6lbABon844i4HlXCw07Rc2uWsdPy\n\
ayRuf6ZTza0gLkPoS96J0SngbbQj9bxTMaRYaf3QVZ3QfKm5zXP09Svx5wIDAQAB\n\
AoGAEXerSbEWSDzTYKCSRYuPq/M3NIUKtLf4saiKQPDbs77nelDf5d7DA34I0a6f\n\
r5dZrA3m41LqMsDzXLq84tc0M6VzkhtA9vpdzLPPxy/qv2G+sqypiDbSfoifmGNU\n\
V7PZAi9Uou+Rz11Xrhs6LhO6/bCI+RZMVBPH8Z6yuES9r4ECQQD+soSOi09iPbkH\n\
Jgl3mJLpeN2l7xRa1z8i+PZITnVKO7P9B4HECVTFZzXgRzZbWEF0QcD0wgr4P3bP\n\
gPYOv9J5AkEA7PKzToB1PLfbKD3ntDP2LvPBTeLsYmY1GiPSnLz6lzyaxkGdILLy\n\
m7LPkJegiDfFYIHGCG2SDvUnOnOuy/XPXwJAajKJLt5LZU0THzXu8Jz/dLXexVdg\n\
h1gEjVJ9bjy4jxFBxRkiNFknrX+RaUiIE6JC+HSKPgPCiyv7IB5HenLlEQJAWeJz\n\
jJsEXkUsmOZq6BwyDnufX8lufKFjEYh3U8gIk6iE2iJ31bisec3qGWK7nhDyCfsQ\n\
wY+3MX9kIzNRIsQbpwJAbwLzDwhEv9onE8vwu4jNxX2TK4xMiMlbRxIjZFQYed/M\n\
vp5kru1lVRoCBsGQBf55AulDBnBSTAFVb3QR+fEvjw==\n\
-----END RSA PRIVATE KEY-----\n\
";

/// A throwaway P-384 key: PKCS#8, but a curve the signer does not take.
const P384_PKCS8: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDAsd4HGJJXWX/dxhGJL\n\
SYkybKOxNo0vMBYD5pL5aO11GBKJHvLjH58Dy866GfS1YRqhZANiAAQXXLox+3J7\n\
WwU+GngnxJfZjwIP/LX3bzmWMPPeToU8N8hTiBlzHFrEC2D5RC5viaDNLQdIV4yV\n\
MgT+7qMi26f6SBg/RWOkzLRSHXVReezSZVgAL84ucV+ip4W01ofoAqg=\n\
-----END PRIVATE KEY-----\n\
";

/// The public halves of the keys above as OpenSSL writes them: `openssl pkey -pubout` (a
/// SubjectPublicKeyInfo), `openssl rsa -RSAPublicKey_out` (PKCS#1) and
/// `openssl ec -pubout -conv_form compressed`.
const RFC7517_RSA_SPKI: &str = "\
-----BEGIN PUBLIC KEY-----\n\
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA0vx7agoebGcQSuuPiLJX\n\
ZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tS\n\
oc/BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ/2W+5JsGY4Hc5n9yBXArwl93lqt\n\
7/RN5w6Cf0h4QyQ5v+65YGjQR0/FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0\n\
zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt+bFTWhAI4vMQFh6WeZu0f\n\
M4lFd2NcRwr3XPksINHaQ+G/xBniIqbw0Ls1jF44+csFCur+kEgU8awapJzKnqDK\n\
gwIDAQAB\n\
-----END PUBLIC KEY-----\n\
";

const RFC7517_RSA_PKCS1_PUBLIC: &str = "\
-----BEGIN RSA PUBLIC KEY-----\n\
MIIBCgKCAQEA0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4\n\
cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc/BJECPebWKRXjBZCiFV4n3oknjhMst\n\
n64tZ/2W+5JsGY4Hc5n9yBXArwl93lqt7/RN5w6Cf0h4QyQ5v+65YGjQR0/FDW2Q\n\
vzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbIS\n\
D08qNLyrdkt+bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ+G/xBniIqbw\n\
0Ls1jF44+csFCur+kEgU8awapJzKnqDKgwIDAQAB\n\
-----END RSA PUBLIC KEY-----\n\
";

const RFC8037_ED25519_SPKI: &str = "\
-----BEGIN PUBLIC KEY-----\n\
MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n\
-----END PUBLIC KEY-----\n\
";

const OPENSSL_P256_SPKI: &str = "\
-----BEGIN PUBLIC KEY-----\n\
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEPwhM+A+OWs3i7fUfIRca2vwcnAJH\n\
H+XN+GQFStupZndaCb4s9/kKNI5UgpV2LsUYw+ueCmR1fH5am14WqCxyiQ==\n\
-----END PUBLIC KEY-----\n\
";

const OPENSSL_P256_SPKI_COMPRESSED: &str = "\
-----BEGIN PUBLIC KEY-----\n\
MDkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDIgADPwhM+A+OWs3i7fUfIRca2vwcnAJH\n\
H+XN+GQFStupZnc=\n\
-----END PUBLIC KEY-----\n\
";

/// 2044 bits: 256 bytes of modulus, like a 2048-bit key, four bits short
/// (`openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2044`, then `pkey -pubout`).
const RSA_2044_SPKI: &str = "\
-----BEGIN PUBLIC KEY-----\n\
MIIBITANBgkqhkiG9w0BAQEFAAOCAQ4AMIIBCQKCAQAMob/jlZ+CIh/hNRtt2Lag\n\
tdo+gpMe0adtuJdGqW4ronZK0sOuX/xIRAXFYK2k+Zsy3uRBF6H1RSJgcsgSQr20\n\
DKK9nOXpX5M7VsDQMznSfhh7Lyt//vsayWeyrIEMkMW+998Pc9lqJDx1FXdROyiY\n\
qKsxkR187OqZJXcV/VFh7dkwqo0wGw6vRLAHHC0+1hZPoZqxh43VUzPEp1MYOGKF\n\
JNh45sWYoJx4HZgUc8jf0r8T4arRv3LjzLWxjnl4tL25cwSVQs5jZR+OISO5BiP/\n\
0hJ9VYQ34RhmPFtiE9M4GA2dN/rUzdZ9baSMvXCrY6B9hoNMd/uZuI42HN3HspFH\n\
AgMBAAE=\n\
-----END PUBLIC KEY-----\n\
";

/// The longest RSA key the service takes: 8192 bits, the most aws-lc-rs verifies with
/// (`openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:8192`, then `pkey -pubout`).
const RSA_8192_SPKI: &str = "\
-----BEGIN PUBLIC KEY-----\n\
MIIEIjANBgkqhkiG9w0BAQEFAAOCBA8AMIIECgKCBAEAy1Nyp5ogCLMFsBinY9tk\n\
UUKecy/ZnpirHEBFwpyenBp1gwfhHUHvYf2Bui/6BxKS4Rl2WB+nPF4gq7W9ZeOP\n\
GkS1Y9bDPLKPE1kD/WKZFoRIB7EBbX0kuCJxbLjWRLmLvBy7foVAYlO4yKbpJ/VI\n\
SjQUjtHd3eu1Ac0zkhE2zQ/KAHJCvFC29tFjZrAoSYLsdkcFZGx6LvAAePHzfn3q\n\
3HIqBCdTgdk356Y6TkE3IU5xFAKhGBArU5AehgRhqwCfMyulWs3Wpgc/39Qu9xqP\n\
CdlEOEwtEyiy0EGSpRm8sKXOMeAYH7XTIJ3aeawBc/R+smsui5l8FgnCk/DmINzV\n\
MQYnQInGA8IZtf6V1cQT2eFziExFPGRGLfMXZPmm+oocmNt2wbVdMgtrKyDxhWFh\n\
cYq9BOgnWKwwts2UbcObpPrpob7ziPhMGYjgrUhsdJ419su4G+B1O/XLJbXbkTAP\n\
4T90bQSJRjMzNvJ3Na3+yslOVlnIsULRxe+dlLu7sjmAk7493P2oJcA9CBgAHDlC\n\
IXJ1BYU0LZoFmsGY6iltAqy3afYqg8uCGW3q/iYlv80bcyGZkKdU/liuF/IWYeSL\n\
Fn5t8UXbRpuKhOCg6Ub/hBn8zH8dCfF4TUOmcRPmvst8NXmVLFRKF8vYuawGSP1S\n\
u6MrYkCGeiPonakyrwW+11qvHpBbmRLwmV5Wrhda+jW/vAJ5SYTGq8xJ1qzJpE14\n\
8rCcZ/tssoijOgeYs+y7F3Wq2zeN/hOTN/LRgc3OTszR4pGG58hpTHQLqorqgxx3\n\
uaMM36pQBLKbTWA8W1TSXokBOWtOPAYPEFxDdeiJRpO8A9jCv0mtdIF4FkKzjE0o\n\
VDbWCjpx0cl3Q924SooZTdAcjBsXgERt+PNvczOh7cnAhEEj024L/nt3KYD+Ta4G\n\
JCxjsPzU6VKOw0Rf0T+qN4nunFYBTYgBcAhNhy3q82yrK2geav+WY4LdfkvOiJeA\n\
Kh5T7ZrH9+VPHN9n2O0/oC3yZH0ceRCydXq4oyzHYOY/ds6Ym0zuAG2tITJycSBG\n\
o2zUG8qGnHNyae2sECc3fgxSoC5HhZEujCkZ6tNHuOXnSw2ECcp4PXCll0lzAIW7\n\
ZE5OIU0KJIj77PklRiwtvtoYmSpD23Vh1yt94xK0ZPRKPDECniJhCc5rIqm7HnYZ\n\
A8Xe8GAA9o+GKMw3NpgWeBU1k9UXYt3RPD5MnKlIrY2ZMzYQxapvTJTYM9fyrHym\n\
dsND+MFle9juDeVgs4GKcYt+B7UrgrJEWcCOdqMaE1LVGnZQnyJjMiQl+aAQTWds\n\
Fgxb1WHhimvCyYcW5fzoJSR2V5XyIACN25/sdojKGpeIHrwW6Ki8cbPM4OpbRuhM\n\
xwIDAQAB\n\
-----END PUBLIC KEY-----\n\
";

/// 8200 bits: a key aws-lc reads, but whose signatures it verifies with no algorithm we use
/// (`rsa_keygen_bits:8200`, then `pkey -pubout`).
const RSA_8200_SPKI: &str = "\
-----BEGIN PUBLIC KEY-----\n\
MIIEIzANBgkqhkiG9w0BAQEFAAOCBBAAMIIECwKCBAIAvrHPl2C6nxGWTB01zFZi\n\
e8YCeoL2I00QTDRuxrgUkrY8ADvqA+Q3MrLn2sJrnRHPZ2SvG1kmrMm4jC5Pm3Oh\n\
jksUDpznYxufhffuAXYzULt/ULcB/fxIjAUTML7pnUsiXAbA9xYY2WUNanxhUd91\n\
xUtfkD9mfS2hXJPPw3eivalI0cdt7W+5abZmNd6ZkZiqV4z94sRPVr19+Ydwo9rQ\n\
8nflWF3n8y6/8dsV8La/BcLwVMdNVLwAgt7HHq3//6X9pGRVP2iqVGwHegw7eLDG\n\
a4au7IDnkUBdIJXgI1+j5V4j3ZC1f313fSyXC6BcntdV6CMcLj/CglDH0T20V9HC\n\
hUBZxvAuZX7CdfsZ01B8QbKDpnf6gi8F9qbOXuJ0F1NxrIZeJscHUyXRGQ5kOlBS\n\
evdi3FK8bSWQUFDiMjrayBCi+9ezW8AjGe+H7GRyxSEDytlxfC3PLeqwUw2WjBft\n\
IKogz+hFHfp9UeS16yzBfg8h4eRAMITB66fxYcMmcu9utVSxfr8tdHpZzMmSCRwj\n\
cE8awWVV8yWdySHCNvCvMRQPCo466shuZSLurWl/MdmIyhdO7FVEzSCeiHPKuGuI\n\
bWohxw5Uobpui6ko7foVJxesMky/xqfPUVnjpBdKC+M5jLu3007RWK9QOEvBTlBh\n\
nrK4jKDHmIBEf7pl44wq5iKL0/009uwshfhe9dRb3C7Jz3lkCFfC/mV9eyFm5Ecr\n\
uDNe+92pL6/szIJvw5LROX4hAJ8RyUzIJ0EuKlMxVz3Bcw6VXWJj1VkUVmoc2ZJB\n\
EiDK2vb1VZXhklbRO+MSeBthO8u2z0d7cCosbSJLn3zURHMsBohFEsy6suOFnpxi\n\
ibROzp7zirIoiuvom2hCQo89SzrfAF1Uvf8ZZYlPMsOFc9guw84qhpM9AramWXB7\n\
Lfunfz3Rk8y2Hzowe0WgzVRKXJP8oNkEgPw11O58yTEDp2y1G/YB4difbCYCLQsv\n\
uvuHVv/qvkMCrtruwFHU+lptjMxyDsgyMCi6l8iGdGFf6eEIw6Eq+pL5IF7Mkq8M\n\
V3NurlvmNWdgLTSZIeJB2v78xejqS4oTzkOKDUm2th1e/XYDgMAGPyct7Lfub2vb\n\
6KVdbpWRHCV8Rq0nJYAYH1iLNGHOplGYxMSM7OsvI5T8kJhxBdcchscdInw9P71r\n\
9VKM9ZO5WCnIwOTYt3s36PuWtjQ0fs6ph9XBVvlvs0pz45H3wifaz0mmzBGK0KCO\n\
unZRoZ4e7ra1f0eXOcu/F4uurzOMbmGB8mqV/Qd0H1+aokUgQX1X+40zZ6MZpeDH\n\
YW/9urce7/NqOBiOA5ahuxNq5LBs7TJ0LRA2bnGtECEJF2difj7WnRTzkbtKeho7\n\
c3kCAwEAAQ==\n\
-----END PUBLIC KEY-----\n\
";

const RSA_1024_SPKI: &str = "\
-----BEGIN PUBLIC KEY-----\n\
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDrvglZpA7UuVZS3tW54Djo9Md4\n\
1+St5o8O04BJ+DtJhXEXouko1rcoHwPH4NzmpPgqkuw+F3y2yDrsE+hBKh/J6lbA\n\
Bon844i4HlXCw07Rc2uWsdPyayRuf6ZTza0gLkPoS96J0SngbbQj9bxTMaRYaf3Q\n\
VZ3QfKm5zXP09Svx5wIDAQAB\n\
-----END PUBLIC KEY-----\n\
";

const RSA_1024_PKCS1_PUBLIC: &str = "\
-----BEGIN RSA PUBLIC KEY-----\n\
MIGJAoGBAOu+CVmkDtS5VlLe1bngOOj0x3jX5K3mjw7TgEn4O0mFcRei6SjWtygf\n\
A8fg3Oak+CqS7D4XfLbIOuwT6EEqH8nqVsAGifzjiLgeVcLDTtFza5ax0/JrJG5/\n\
plPNrSAuQ+hL3onRKeBttCP1vFMxpFhp/dBVndB8qbnNc/T1K/HnAgMBAAE=\n\
-----END RSA PUBLIC KEY-----\n\
";

const P384_SPKI: &str = "\
-----BEGIN PUBLIC KEY-----\n\
MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEF1y6Mftye1sFPhp4J8SX2Y8CD/y19285\n\
ljDz3k6FPDfIU4gZcxxaxAtg+UQub4mgzS0HSFeMlTIE/u6jItun+kgYP0VjpMy0\n\
Uh11UXns0mVYAC/OLnFfoqeFtNaH6AKo\n\
-----END PUBLIC KEY-----\n\
";

/// Each private key above with a public form of it, and the RFC 7638 thumbprint where an RFC
/// gives it.
const PUBLIC_HALVES: [(&str, &str, Option<&str>); 5] = [
    (
        RFC7517_RSA_PKCS8,
        RFC7517_RSA_SPKI,
        Some(RFC7638_THUMBPRINT),
    ),
    (
        RFC7517_RSA_PKCS1,
        RFC7517_RSA_PKCS1_PUBLIC,
        Some(RFC7638_THUMBPRINT),
    ),
    (
        RFC8037_ED25519_PKCS8,
        RFC8037_ED25519_SPKI,
        Some(RFC8037_THUMBPRINT),
    ),
    (OPENSSL_P256_PKCS8, OPENSSL_P256_SPKI, None),
    (OPENSSL_P256_PKCS8, OPENSSL_P256_SPKI_COMPRESSED, None),
];

/// Every kind `keygen` offers: the algorithm it implies, its JWK `kty`, and for RSA the modulus
/// length in bytes.
const KINDS: [(KeyKind, Algorithm, &str, Option<usize>); 5] = [
    (KeyKind::Rsa2048, Algorithm::RS256, "RSA", Some(256)),
    (KeyKind::Rsa3072, Algorithm::RS256, "RSA", Some(384)),
    (KeyKind::Rsa4096, Algorithm::RS256, "RSA", Some(512)),
    (KeyKind::P256, Algorithm::ES256, "EC", None),
    (KeyKind::Ed25519, Algorithm::EdDSA, "OKP", None),
];

const MESSAGE: &[u8] = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiI0MiJ9";

fn generate(kind: KeyKind) -> SigningKey {
    let pem = SigningKey::generate_pem(kind).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{kind:?}");
    assert!(
        !pem.contains('\r'),
        "{kind:?}: line ends as openssl writes them"
    );
    SigningKey::from_pem(&pem).unwrap()
}

fn jwk_json(key: &SigningKey) -> Value {
    serde_json::to_value(key.public_jwk()).unwrap()
}

/// The public JWK as `jsonwebtoken` reads it: an implementation independent of ours.
fn jwk(key: &SigningKey) -> Jwk {
    serde_json::from_value(jwk_json(key)).unwrap()
}

/// Verifies with `jsonwebtoken`, using only what the JWK publishes (its key and its `alg`).
fn jwk_verifies(key: &SigningKey, message: &[u8], signature: &[u8]) -> bool {
    let json = jwk_json(key);
    let algorithm = jsonwebtoken::Algorithm::from_str(json["alg"].as_str().unwrap()).unwrap();
    let decoding = DecodingKey::from_jwk(&jwk(key)).unwrap();
    jsonwebtoken::crypto::verify(
        &URL_SAFE_NO_PAD.encode(signature),
        message,
        &decoding,
        algorithm,
    )
    .unwrap()
}

fn b64_len(member: &Value) -> usize {
    URL_SAFE_NO_PAD
        .decode(member.as_str().unwrap())
        .unwrap()
        .len()
}

#[test]
fn a_generated_key_of_every_kind_signs_what_its_public_jwk_verifies() {
    for (kind, algorithm, _, _) in KINDS {
        let key = generate(kind);
        assert_eq!(key.algorithm(), algorithm, "{kind:?}");
        let signature = key.sign(MESSAGE).unwrap();
        assert!(jwk_verifies(&key, MESSAGE, &signature), "{kind:?}");

        let mut tampered = signature.clone();
        tampered[0] ^= 1;
        assert!(!jwk_verifies(&key, MESSAGE, &tampered), "{kind:?}");
        assert!(
            !jwk_verifies(&key, b"another message", &signature),
            "{kind:?}"
        );
        let stranger = generate(kind);
        assert!(!jwk_verifies(&stranger, MESSAGE, &signature), "{kind:?}");
    }
}

#[test]
fn the_public_jwk_has_the_members_of_its_key_type_and_nothing_private() {
    for (kind, algorithm, kty, modulus_len) in KINDS {
        let json = jwk_json(&generate(kind));
        let alg = serde_json::to_value(algorithm).unwrap();
        assert_eq!(json["kty"], kty, "{kind:?}");
        assert_eq!(json["alg"], alg, "{kind:?}");
        assert_eq!(json["use"], "sig", "{kind:?}");
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(json.get(private).is_none(), "{kind:?}: {json}");
        }
        match kind {
            KeyKind::Rsa2048 | KeyKind::Rsa3072 | KeyKind::Rsa4096 => {
                assert_eq!(Some(b64_len(&json["n"])), modulus_len, "{kind:?}");
                assert_eq!(json["e"], "AQAB", "{kind:?}");
                assert!(
                    json.get("crv").is_none() && json.get("x").is_none(),
                    "{json}"
                );
            }
            KeyKind::P256 => {
                assert_eq!(json["crv"], "P-256");
                assert_eq!((b64_len(&json["x"]), b64_len(&json["y"])), (32, 32));
                assert!(json.get("n").is_none(), "{json}");
            }
            KeyKind::Ed25519 => {
                assert_eq!(json["crv"], "Ed25519");
                assert_eq!(b64_len(&json["x"]), 32);
                assert!(json.get("y").is_none() && json.get("n").is_none(), "{json}");
            }
        }
    }
}

#[test]
fn the_kid_of_every_generated_key_is_its_rfc_7638_thumbprint() {
    let mut kids = HashSet::new();
    for (kind, _, _, _) in KINDS {
        for _ in 0..2 {
            let key = generate(kind);
            let thumbprint = jwk(&key).thumbprint(ThumbprintHash::SHA256).unwrap();
            assert_eq!(key.kid(), thumbprint, "{kind:?}");
            assert_eq!(jwk_json(&key)["kid"], thumbprint, "{kind:?}");
            assert!(kids.insert(thumbprint), "{kind:?}: kid repeated");
        }
    }
}

#[test]
fn the_rfc_7638_example_key_gets_the_rfc_thumbprint_as_kid() {
    let key = SigningKey::from_pem(RFC7517_RSA_PKCS8).unwrap();
    let json = jwk_json(&key);
    assert_eq!(json["n"], RFC7638_N);
    assert_eq!(json["e"], "AQAB");
    assert_eq!(key.kid(), RFC7638_THUMBPRINT);
}

#[test]
fn a_pkcs1_rsa_private_key_is_read_as_the_same_key_as_its_pkcs8_form() {
    let pkcs1 = SigningKey::from_pem(RFC7517_RSA_PKCS1).unwrap();
    let pkcs8 = SigningKey::from_pem(RFC7517_RSA_PKCS8).unwrap();
    assert_eq!(pkcs1.kid(), RFC7638_THUMBPRINT);
    assert_eq!(pkcs1.algorithm(), Algorithm::RS256);
    let signature = pkcs1.sign(MESSAGE).unwrap();
    assert!(jwk_verifies(&pkcs1, MESSAGE, &signature));
    // RSASSA-PKCS1-v1_5 is deterministic: the same key gives the same signature.
    assert_eq!(signature, pkcs8.sign(MESSAGE).unwrap());
}

#[test]
fn the_rfc_8037_example_key_gets_the_rfc_thumbprint_as_kid() {
    let key = SigningKey::from_pem(RFC8037_ED25519_PKCS8).unwrap();
    assert_eq!(key.algorithm(), Algorithm::EdDSA);
    assert_eq!(jwk_json(&key)["x"], RFC8037_X);
    assert_eq!(key.kid(), RFC8037_THUMBPRINT);
    let signature = key.sign(MESSAGE).unwrap();
    assert!(jwk_verifies(&key, MESSAGE, &signature));
}

#[test]
fn a_p256_key_written_by_openssl_is_accepted() {
    let key = SigningKey::from_pem(OPENSSL_P256_PKCS8).unwrap();
    assert_eq!(key.algorithm(), Algorithm::ES256);
    let signature = key.sign(MESSAGE).unwrap();
    assert_eq!(signature.len(), 64, "JWS wants r || s, not DER");
    assert!(jwk_verifies(&key, MESSAGE, &signature));
}

/// What `openssl ecparam -genkey` writes: SEC1 after a block naming the curve again.
#[test]
fn a_sec1_p256_key_is_read_as_the_same_key_as_its_pkcs8_form() {
    let sec1 = SigningKey::from_pem(OPENSSL_P256_SEC1).unwrap();
    let pkcs8 = SigningKey::from_pem(OPENSSL_P256_PKCS8).unwrap();
    assert_eq!(sec1.kid(), pkcs8.kid());
    assert_eq!(sec1.algorithm(), Algorithm::ES256);
    let signature = sec1.sign(MESSAGE).unwrap();
    assert!(jwk_verifies(&pkcs8, MESSAGE, &signature));
    let public = VerifyingKey::from_pem(OPENSSL_P256_SEC1).unwrap();
    assert_eq!(public.kid(), pkcs8.kid());
}

#[test]
fn rsa_keys_under_2048_bits_are_refused() {
    for pem in [RSA_1024_PKCS8, RSA_1024_PKCS1] {
        let result = SigningKey::from_pem(pem);
        assert!(result.is_err(), "{result:?}");
    }
}

#[test]
fn a_short_rsa_key_is_refused_as_too_short() {
    for pem in [RSA_1024_PKCS8, RSA_1024_PKCS1] {
        let error = SigningKey::from_pem(pem).unwrap_err();
        assert!(matches!(error, KeyError::TooShort), "{error:?}");
        assert!(error.to_string().contains("2048"), "{error}");
    }
}

#[test]
fn garbage_and_unsupported_pem_documents_are_refused() {
    let block = |tag: &str, der: &[u8]| pem::encode(&pem::Pem::new(tag, der.to_vec()));
    let p256_der = pem::parse(OPENSSL_P256_PKCS8).unwrap().into_contents();
    // Not PEM at all, or PEM whose DER no supported parser takes.
    let not_pem = [
        String::new(),
        "not a PEM document".into(),
        "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n".into(),
    ];
    for text in not_pem {
        let error = SigningKey::from_pem(&text).unwrap_err();
        assert!(matches!(error, KeyError::Pem(_)), "{text:?}: {error:?}");
    }
    let unusable = [
        block("PRIVATE KEY", b"garbage"),
        block("RSA PRIVATE KEY", b"garbage"),
        block("RSA PRIVATE KEY", &p256_der),
        block("EC PRIVATE KEY", b"garbage"),
        P384_PKCS8.into(),
        OPENSSL_P384_SEC1.into(),
    ];
    for text in unusable {
        let error = SigningKey::from_pem(&text).unwrap_err();
        assert!(matches!(error, KeyError::Rejected), "{text:?}: {error:?}");
    }
    for tag in ["CERTIFICATE", "ENCRYPTED PRIVATE KEY"] {
        let error = SigningKey::from_pem(&block(tag, &p256_der)).unwrap_err();
        assert!(
            matches!(&error, KeyError::Block(t) if t == tag),
            "{tag}: {error:?}"
        );
        assert!(error.to_string().contains(tag), "{error}");
    }
}

#[test]
fn a_file_of_several_pem_blocks_is_refused_not_read_as_its_first() {
    let (_, first, _) = PUBLIC_HALVES[0];
    let (_, second, _) = PUBLIC_HALVES[1];
    let bundle = format!("{first}{second}");
    let error = VerifyingKey::from_pem(&bundle).unwrap_err();
    assert!(matches!(error, KeyError::SeveralBlocks(2)), "{error:?}");
    let (private, _, _) = PUBLIC_HALVES[0];
    let error = SigningKey::from_pem(&format!("{OPENSSL_P256_PKCS8}{private}")).unwrap_err();
    assert!(matches!(error, KeyError::SeveralBlocks(2)), "{error:?}");
    assert!(error.to_string().contains("2 PEM blocks"), "{error}");
}

fn der(pem_text: &str) -> Vec<u8> {
    pem::parse(pem_text).unwrap().into_contents()
}

#[test]
fn a_public_key_gets_the_kid_and_jwk_of_its_private_key() {
    for (private, public, thumbprint) in PUBLIC_HALVES {
        let signer = SigningKey::from_pem(private).unwrap();
        let verifying = VerifyingKey::from_pem(public).unwrap();

        assert_eq!(verifying.kid(), signer.kid(), "{public}");
        assert_eq!(verifying.algorithm(), signer.algorithm(), "{public}");
        assert_eq!(
            serde_json::to_value(verifying.public_jwk()).unwrap(),
            jwk_json(&signer),
            "{public}"
        );
        if let Some(thumbprint) = thumbprint {
            assert_eq!(verifying.kid(), thumbprint, "{public}");
        }
        let signature = signer.sign(MESSAGE).unwrap();
        assert!(verifying.verifies(MESSAGE, &signature), "{public}");
        assert!(
            !verifying.verifies(b"another message", &signature),
            "{public}"
        );
    }
}

#[test]
fn a_private_key_read_as_a_verifying_key_gives_its_public_half() {
    for (private, _, _) in PUBLIC_HALVES {
        let signer = SigningKey::from_pem(private).unwrap();

        let verifying = VerifyingKey::from_pem(private).unwrap();

        assert_eq!(verifying.kid(), signer.kid());
        assert_eq!(verifying.to_pem(), signer.verifying_key().to_pem());
        assert!(
            !verifying.to_pem().contains("PRIVATE"),
            "{}",
            verifying.to_pem()
        );
    }
}

#[test]
fn the_public_pem_is_the_subject_public_key_info_openssl_writes() {
    for (private, openssl) in [
        (RFC7517_RSA_PKCS8, RFC7517_RSA_SPKI),
        (RFC8037_ED25519_PKCS8, RFC8037_ED25519_SPKI),
        (OPENSSL_P256_PKCS8, OPENSSL_P256_SPKI),
    ] {
        let written = SigningKey::from_pem(private)
            .unwrap()
            .verifying_key()
            .to_pem();

        assert!(
            written.starts_with("-----BEGIN PUBLIC KEY-----\n"),
            "{written}"
        );
        assert_eq!(der(&written), der(openssl), "{written}");
    }
    // A compressed point is written out uncompressed, as the JWK has it.
    let compressed = VerifyingKey::from_pem(OPENSSL_P256_SPKI_COMPRESSED).unwrap();
    assert_eq!(der(&compressed.to_pem()), der(OPENSSL_P256_SPKI));
}

#[test]
fn a_generated_key_of_every_kind_reads_back_from_its_public_pem() {
    for (kind, algorithm, _, _) in KINDS {
        let signer = generate(kind);
        let public_pem = signer.verifying_key().to_pem();

        let public = VerifyingKey::from_pem(&public_pem).unwrap();

        assert_eq!(public.kid(), signer.kid(), "{kind:?}");
        assert_eq!(public.algorithm(), algorithm, "{kind:?}");
        let signature = signer.sign(MESSAGE).unwrap();
        assert!(public.verifies(MESSAGE, &signature), "{kind:?}");
        assert!(!generate(kind).verifying_key().verifies(MESSAGE, &signature));
    }
}

#[test]
fn a_public_key_is_refused_as_a_signing_key() {
    for (_, public, _) in PUBLIC_HALVES {
        let error = SigningKey::from_pem(public).unwrap_err();

        assert!(matches!(error, KeyError::PublicOnly), "{public}: {error:?}");
        assert!(
            error.to_string().contains("needs the private key"),
            "{error}"
        );
    }
}

#[test]
fn garbage_and_unsupported_public_keys_are_refused() {
    let block = |tag: &str, der: &[u8]| pem::encode(&pem::Pem::new(tag, der.to_vec()));
    let raw_ed25519 = URL_SAFE_NO_PAD.decode(RFC8037_X).unwrap();
    let not_pem = "-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n";
    let error = VerifyingKey::from_pem(not_pem).unwrap_err();
    assert!(matches!(error, KeyError::Pem(_)), "{error:?}");
    let unusable = [
        block("PUBLIC KEY", b"garbage"),
        block("PUBLIC KEY", &[0x30; 64]),
        // The bare key, which aws-lc would take: a PUBLIC KEY block is a SubjectPublicKeyInfo.
        block("PUBLIC KEY", &raw_ed25519),
        block("RSA PUBLIC KEY", b"garbage"),
        block("RSA PUBLIC KEY", &der(OPENSSL_P256_SPKI)),
        block("PUBLIC KEY", &der(OPENSSL_P256_PKCS8)),
        P384_SPKI.into(),
    ];
    for text in unusable {
        let error = VerifyingKey::from_pem(&text).unwrap_err();
        assert!(matches!(error, KeyError::Rejected), "{text}: {error:?}");
        assert!(
            error.to_string().contains("RSA, P-256 or Ed25519"),
            "{error}"
        );
    }
    for text in [RSA_1024_SPKI, RSA_1024_PKCS1_PUBLIC, RSA_2044_SPKI] {
        let error = VerifyingKey::from_pem(text).unwrap_err();
        assert!(matches!(error, KeyError::TooShort), "{text}: {error:?}");
    }
    let error = VerifyingKey::from_pem(&block("CERTIFICATE", &der(RSA_1024_SPKI))).unwrap_err();
    assert!(
        matches!(&error, KeyError::Block(t) if t == "CERTIFICATE"),
        "{error:?}"
    );
    assert!(error.to_string().contains("PUBLIC KEY"), "{error}");
}

#[test]
fn rsa_keys_of_up_to_8192_bits_are_taken_and_longer_ones_refused() {
    let longest = VerifyingKey::from_pem(RSA_8192_SPKI).unwrap();
    assert_eq!(longest.algorithm(), Algorithm::RS256);
    let jwk = serde_json::to_value(longest.public_jwk()).unwrap();
    assert_eq!(b64_len(&jwk["n"]), MAX_RSA_BITS / 8);
    // aws-lc reads the longer key, but would verify none of its signatures: refused rather
    // than published.
    let error = VerifyingKey::from_pem(RSA_8200_SPKI).unwrap_err();
    assert!(matches!(error, KeyError::Rejected), "{error:?}");
}

#[test]
fn a_key_shows_in_debug_output_as_its_kid_and_algorithm() {
    let signer = SigningKey::from_pem(RFC7517_RSA_PKCS8).unwrap();
    for shown in [
        format!("{signer:?}"),
        format!("{:?}", signer.verifying_key()),
    ] {
        assert!(shown.contains(RFC7638_THUMBPRINT), "{shown}");
        assert!(shown.contains("RS256"), "{shown}");
    }
}
