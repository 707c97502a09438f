package installer

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/containerd/log"
)

// An install that restarted containerd and failed is rolled back and
// exits non-zero; the kubelet then runs it again, with back-off, for as
// long as the pod lives. Tried again with the same files on the same
// containerd, it would fail the same way, restarting containerd twice
// each time. So the failed attempt is recorded on the node (its digest and
// its error, InstallFailedAnnotation) and the same attempt is refused
// before it touches anything; any change to what it depends on, or the
// annotation's removal, lets it be tried again.

// maxRecordedError bounds the error kept in the annotation.
const maxRecordedError = 1024

// attemptDigest names an install attempt by what its result depends on:
// the node's files the run may change, as found (before), what it writes
// (the shim from shimSource, the drop-in, the edited config) and
// containerd's version.
func attemptDigest(before []fileState, shimSource string, dropIn, edited []byte, version string) (string, error) {
	h := sha256.New()
	field := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	for _, s := range before {
		field([]byte(s.path))
		field([]byte(fmt.Sprint(s.exists, s.mode)))
		field(s.data)
	}
	f, err := os.Open(shimSource)
	if err != nil {
		return "", fmt.Errorf("read the shim to install: %w", err)
	}
	defer f.Close()
	sh := sha256.New()
	if _, err := io.Copy(sh, f); err != nil {
		return "", fmt.Errorf("read the shim to install: %w", err)
	}
	field(sh.Sum(nil))
	field(dropIn)
	field(edited)
	field([]byte(version))
	return hex.EncodeToString(h.Sum(nil))[:32], nil
}

// checkAttempt refuses an attempt the node's record says failed before.
func (in *installer) checkAttempt(ctx context.Context, digest, version string) error {
	recorded, err := in.node.Annotation(ctx, InstallFailedAnnotation)
	if err != nil {
		return err
	}
	prev, cause, _ := strings.Cut(recorded, " ")
	if prev != digest {
		return nil
	}
	return fmt.Errorf("this install (the same files, shim and containerd %s) failed before after restarting containerd: %s; "+
		"containerd is not restarted again for it: change what failed, or remove the annotation %s from node %s to try again",
		version, cause, InstallFailedAnnotation, in.o.NodeName)
}

// recordAttempt records on the node that the attempt digest failed with
// cause; a failure to record is only reported.
func (in *installer) recordAttempt(ctx context.Context, digest string, cause error) {
	msg := cause.Error()
	if len(msg) > maxRecordedError {
		msg = msg[:maxRecordedError]
	}
	value := digest + " " + msg
	if err := in.node.SetMetadata(ctx, nil, map[string]*string{InstallFailedAnnotation: &value}); err != nil {
		log.G(ctx).WithError(err).Warn("could not record the failed install on the node: the kubelet's next try repeats it")
		fmt.Fprintf(in.out, "could not record the failed install on node %s: %v\n", in.o.NodeName, err)
	}
}
