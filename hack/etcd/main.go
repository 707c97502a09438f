// Command etcd is etcd's server, built from its module at the version
// go.mod pins, for make e2e's one-node cluster (hack/deps.sh k8s).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
