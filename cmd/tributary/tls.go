package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"time"

	"github.com/tributary-hs/tributary/core/config"
)

// listenFederation opens the federation listener with its TLS
// configuration: the configured certificate, or one generated for the
// server name (--tls-self-signed).
func listenFederation(cfg *config.Config) (net.Listener, *tls.Config, error) {
	fc := cfg.Federation
	var cert tls.Certificate
	var err error
	if fc.TLSCert != "" {
		cert, err = tls.LoadX509KeyPair(fc.TLSCert, fc.TLSKey)
	} else {
		cert, err = selfSignedCert(cfg.ServerName)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("federation TLS: %w", err)
	}
	ln, err := net.Listen("tcp", fc.Listen)
	if err != nil {
		return nil, nil, fmt.Errorf("federation: listen on %s: %w", fc.Listen, err)
	}
	return ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// selfSignedCert is a certificate for the server name's host (a DNS name or
// an IP address), valid for a year from now, made afresh at each start.
func selfSignedCert(serverName string) (tls.Certificate, error) {
	host := serverName
	if h, _, err := net.SplitHostPort(serverName); err == nil {
		host = h
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
