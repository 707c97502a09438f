package cri

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// message appends field num holding the message made of parts.
func message(b []byte, num protowire.Number, parts ...[]byte) []byte {
	var m []byte
	for _, p := range parts {
		m = append(m, p...)
	}
	return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), m)
}

func varint(num protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
}

// TestDecodeCRIPodConfigWideVarints: a varint wider than its field (an enum
// or uint32 sent as 64 bits) is cut as protobuf cuts it, so the shim and
// CRI agree on, say, whether the pod is on the host network.
func TestDecodeCRIPodConfigWideVarints(t *testing.T) {
	const wide = 1 << 32
	b := message(nil, podConfigMetadata, varint(metadataAttempt, wide+3))
	b = message(b, podConfigLinux, message(nil, linuxSecurityContext,
		message(nil, securityNamespaceOptions,
			varint(namespaceNetwork, wide+ModeNode), varint(namespacePID, wide+ModeNode), varint(namespaceIPC, wide+ModeNode),
			message(nil, namespaceUserns, varint(usernsMode, wide+ModeNode),
				message(nil, usernsUIDs, varint(mappingHostID, wide+1000), varint(mappingContainerID, wide), varint(mappingLength, wide+1))))))
	var want runtimeapi.PodSandboxConfig
	if err := proto.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	agree(t, &want, got)
}
