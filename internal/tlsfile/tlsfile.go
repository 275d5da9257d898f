// Package tlsfile builds TLS client configurations from PEM files, for the
// Kafka and Redis connections alike.
package tlsfile

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Files names the PEM files of a TLS client. Every field is optional: no CA
// trusts the system's roots, no certificate presents none.
type Files struct {
	CAFile     string // CA bundle the server's certificate must chain to
	CertFile   string // client certificate, for mutual TLS
	KeyFile    string // its private key
	ServerName string // name the server's certificate must carry; default: the dialled host
}

// Config loads the files. Errors name the file and what is wrong with it;
// flag is the flag prefix the caller's users know (for example
// "--kafka-tls"), used in the messages.
func (f Files) Config(flag string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.ServerName}
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%s-ca-file: %w", flag, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s-ca-file %s: no PEM certificate in it", flag, f.CAFile)
		}
		c.RootCAs = pool
	}
	if (f.CertFile == "") != (f.KeyFile == "") {
		return nil, fmt.Errorf("%s-cert-file and %s-key-file: give both or neither", flag, flag)
	}
	if f.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s-cert-file %s, %s-key-file %s: %w", flag, f.CertFile, flag, f.KeyFile, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// Set reports whether any file or name is given.
func (f Files) Set() bool {
	return f.CAFile != "" || f.CertFile != "" || f.KeyFile != "" || f.ServerName != ""
}

// Explain turns a TLS handshake failure into the cause an operator can act
// on, with the flag that fixes it; other errors come back unchanged. The
// result wraps err.
func Explain(err error, flag string) error {
	var unknown x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var header tls.RecordHeaderError
	var alert tls.AlertError
	switch {
	case errors.As(err, &unknown):
		return fmt.Errorf("TLS: the server's certificate is not signed by a trusted CA (set %s-ca-file to the CA that signed it): %w", flag, err)
	case errors.As(err, &hostname):
		return fmt.Errorf("TLS: the server's certificate is not valid for the name dialled (set %s-server-name to a name it carries): %w", flag, err)
	case errors.As(err, &invalid):
		return fmt.Errorf("TLS: the server's certificate is invalid: %w", err)
	case errors.As(err, &header):
		return fmt.Errorf("TLS: the server does not speak TLS on this port: %w", err)
	case errors.As(err, &alert), strings.Contains(err.Error(), "remote error: tls:"):
		return fmt.Errorf("TLS: the server refused the handshake (a client certificate it trusts may be required: %s-cert-file, %s-key-file): %w", flag, flag, err)
	}
	return err
}

// Fatal reports whether err is a TLS failure no retry mends: a certificate
// that is not trusted, not valid for the name or invalid, a server that does
// not speak TLS, or a refused handshake.
func Fatal(err error) bool {
	var unknown x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var header tls.RecordHeaderError
	var alert tls.AlertError
	return errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid) ||
		errors.As(err, &header) || errors.As(err, &alert) || strings.Contains(err.Error(), "remote error: tls:")
}
