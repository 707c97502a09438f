//go:build e2e

package e2e

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
	"os/exec"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/standin"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testimage"
)

// conformanceImages are the stand-ins for the images e2e.test pulls
// (`e2e.test --list-images`, so a new pin's tags follow) that have one;
// the rest are left out, and a spec pulling one fails on every handler.
// agnhost is the one e2e.test's own release builds (make
// deps-k8s-conformance), on the busybox stand-in. pause is Kubernetes'
// pause, for the sandbox image handler runc's pods run on.
func conformanceImages(t *testing.T) (images []testimage.Image, pause []byte) {
	t.Helper()
	out, err := exec.Command("e2e.test", "--list-images").Output()
	if err != nil {
		t.Fatalf("e2e.test --list-images: %v", err)
	}
	bins, err := standin.BuildPrograms(conformance.repo, t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	base, err := standin.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	agnhost, err := exec.LookPath("agnhost")
	if err != nil {
		t.Fatal(err)
	}
	agnhostBin, err := os.ReadFile(agnhost)
	if err != nil {
		t.Fatal(err)
	}
	crt, key, err := localhostCert()
	if err != nil {
		t.Fatal(err)
	}
	const e2eImages = "registry.k8s.io/e2e-test-images/"
	for _, name := range strings.Fields(string(out)) {
		repo, _, _ := strings.Cut(name, ":")
		switch {
		case repo == e2eImages+"agnhost":
			// As upstream's: /agnhost, the entrypoint, with pause by
			// default; agnhost-2 for the entrypoint specs; /uploads for
			// netexec; a serving certificate for 127.0.0.1 (porter,
			// netexec --tls-*); a user and group defined in the image;
			// curl, which the specs run in it (upstream's has Alpine's).
			images = append(images, standin.With(base, name, []testimage.File{
				{Path: "agnhost", Data: agnhostBin, Mode: 0o755},
				{Path: "agnhost-2", Linkname: "agnhost"},
				{Path: "uploads", Dir: true},
				{Path: "localhost.crt", Data: crt, Mode: 0o644},
				{Path: "localhost.key", Data: key, Mode: 0o644},
				{Path: "usr/bin/curl", Data: []byte(curlScript), Mode: 0o755},
				{Path: "etc/passwd", Data: []byte(standin.Passwd + "user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\n"), Mode: 0o644},
				{Path: "etc/group", Data: []byte(standin.Group + "user-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n"), Mode: 0o644},
			}, func(i *testimage.Image) { i.Entrypoint, i.Cmd = []string{"/agnhost"}, []string{"pause"} }))
		case repo == e2eImages+"busybox":
			images = append(images, standin.With(base, name, nil, nil))
		case repo == e2eImages+"nginx":
			images = append(images, standin.Webserver(base, bins, name, "nginx", "80"))
		case repo == e2eImages+"httpd":
			images = append(images, standin.Webserver(base, bins, name, "httpd", "80"))
		case repo == e2eImages+"nonewprivs":
			images = append(images, standin.Nonewprivs(base, bins, name))
		case repo == e2eImages+"nonroot":
			images = append(images, standin.With(base, name, nil, func(i *testimage.Image) { i.User = "1234" }))
		case path.Base(repo) == "pause" && strings.HasPrefix(repo, "registry.k8s.io/"):
			images = append(images, testimage.Pause(name, bins["pause"]))
		}
	}
	return images, bins["pause"]
}

// curlScript stands in for curl in the agnhost image: the specs fetch a
// URL with it (the exec hooks report to a pod over HTTP), which busybox's
// wget does as well. Options are ignored.
const curlScript = `#!/bin/sh
# Stand-in for curl: a GET of the URL argument through busybox wget.
url=
for a; do
	case $a in
	*://*) url=$a ;;
	-*) ;;
	*) [ -n "$url" ] || last=$a ;;
	esac
done
exec wget -q -O - "${url:-$last}"
`

// localhostCert is a self-signed serving certificate for 127.0.0.1 and
// ::1 and its key, PEM, as agnhost's image ships one (porter/localhost.crt).
func localhostCert() (crt, key []byte, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}
