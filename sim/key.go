package sim

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"sync"
)

// publicKeyPath serves the key that verifies webhook signatures. Like VideoSDK's, it
// needs no token.
const publicKeyPath = "/v2/public/rsa-public-key"

// defaultKey is the key of every Server whose Config has none. It is generated on
// first use and shared, because generating a 2048-bit key takes 30 to 500 ms (more
// under -race), and the test suites create many Servers that never sign.
var defaultKey = sync.OnceValue(func() *rsa.PrivateKey {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic("sim: generate RSA key: " + err.Error()) // only for a size under 1024 bits
	}
	return key
})

func (s *Server) key() *rsa.PrivateKey {
	if s.privateKey != nil {
		return s.privateKey
	}
	return defaultKey()
}

// Sign returns what the videosdk-signature header of a webhook with this body holds:
// base64 of the RSA PKCS#1 v1.5 SHA-256 signature of body with the Server's key. The
// Server signs its own webhooks with it; tests sign forged or replayed ones.
func (s *Server) Sign(body []byte) string {
	sum := sha256.Sum256(body)
	sig, err := rsa.SignPKCS1v15(nil, s.key(), crypto.SHA256, sum[:])
	if err != nil {
		panic("sim: sign with Config.Key: " + err.Error()) // a key too small for a SHA-256 signature
	}
	return base64.StdEncoding.EncodeToString(sig)
}

// publicKeyPEM is the Server's public key in the PEM form its Config asks for.
func (s *Server) publicKeyPEM() []byte {
	pub := &s.key().PublicKey
	if s.keyPKCS1 {
		return pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(pub)})
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic("sim: marshal RSA public key: " + err.Error()) // only for key types other than RSA's
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// publicKey answers {"publicKey": "<PEM>"}, as public code that verifies VideoSDK's
// webhooks reads it, or the PEM alone.
func (s *Server) publicKey(w http.ResponseWriter, _ *http.Request) {
	if s.keyBare {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(s.publicKeyPEM()) // fails only if the client has gone
		return
	}
	writeJSON(w, http.StatusOK, publicKeyDoc{PublicKey: string(s.publicKeyPEM())})
}
