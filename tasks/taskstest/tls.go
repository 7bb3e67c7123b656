package taskstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TLSServer is an ACL server (as StartACLRedis starts) that also listens
// with TLS.
type TLSServer struct {
	*Server
	// TLSAddr is the TLS port as localhost:port. The certificate names
	// "localhost" only, so dialling 127.0.0.1:port fails verification.
	TLSAddr string
	// Roots trusts the server's certificate: a CA made for the test, that
	// no system trusts.
	Roots *x509.CertPool
}

// StartTLSRedis starts a TLS-capable ACL server and stops it in t.Cleanup.
// The plain port (Server.Addr) stays open for setting up and checking.
func StartTLSRedis(t testing.TB) *TLSServer {
	t.Helper()
	bin := redisServer(t)
	s := aclServer(t)
	roots, certArgs := writeCerts(t, s.dir)
	base := s.args
	ts := &TLSServer{Server: s, Roots: roots}
	var lastErr error
	for range 5 {
		port, err := freePort(t)
		if err != nil {
			t.Fatal(err)
		}
		tlsPort, err := freePort(t)
		if err != nil {
			t.Fatal(err)
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		ts.TLSAddr = net.JoinHostPort("localhost", strconv.Itoa(tlsPort))
		s.args = append(append([]string{"--tls-port", strconv.Itoa(tlsPort)}, certArgs...), base...)
		if lastErr = s.start(bin); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("start redis-server with TLS: %v", lastErr)
	}
	t.Cleanup(s.Stop)
	return ts
}

// writeCerts makes a CA and a server certificate for "localhost" in dir and
// returns the pool that trusts the CA and redis-server's TLS arguments.
func writeCerts(t testing.TB, dir string) (*x509.CertPool, []string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "orderworker test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames:  []string{"localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	return roots, []string{
		"--tls-cert-file", write("server.crt", "CERTIFICATE", der),
		"--tls-key-file", write("server.key", "PRIVATE KEY", keyDER),
		"--tls-ca-cert-file", write("ca.crt", "CERTIFICATE", caDER),
		"--tls-auth-clients", "no",
	}
}
