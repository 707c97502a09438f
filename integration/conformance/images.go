package main

import (
	"runtime"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/standin"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testenv"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testimage"
)

const (
	e2eImages = "registry.k8s.io/e2e-test-images/"
	criTools  = "gcr.io/k8s-staging-cri-tools/"
)

// publishImages builds the stand-ins for every image critest pulls and
// pushes them to the local registry under their upstream names.
func publishImages(env *testenv.Env, registry, work, prebuilt string) error {
	bins, err := standin.BuildPrograms(env.Repo, work, prebuilt)
	if err != nil {
		return err
	}
	base, err := standin.Busybox()
	if err != nil {
		return err
	}
	with := func(name string, extra []testimage.File, mutate func(*testimage.Image)) testimage.Image {
		return standin.With(base, name, extra, mutate)
	}
	marker := func(name, file string) testimage.Image {
		return with(name, []testimage.File{{Path: file, Data: []byte(file + "\n"), Mode: 0o644}}, nil)
	}
	user := func(name, u string) testimage.Image {
		return with(name, nil, func(i *testimage.Image) { i.User = u })
	}
	images := []testimage.Image{
		with(e2eImages+"busybox:1.29-2", nil, nil),
		standin.Webserver(base, bins, e2eImages+"nginx:1.14-2", "nginx", "80"),
		standin.Webserver(base, bins, e2eImages+"httpd:2.4.39-4", "httpd", "80"),
		standin.Webserver(base, bins, criTools+"hostnet-nginx-"+runtime.GOARCH+":latest", "nginx", "12003"),
		standin.Nonewprivs(base, bins, e2eImages+"nonewprivs:1.3"),
		user(criTools+"test-image-user-uid:latest", "1002"),
		user(criTools+"test-image-user-username:latest", "www-data"),
		user(criTools+"test-image-user-uid-group:latest", "1003:1004"),
		user(criTools+"test-image-user-username-group:latest", "www-data:1004"),
		with(criTools+"test-image-predefined-group:latest", []testimage.File{
			{Path: "etc/passwd", Data: []byte(standin.Passwd + "default-user:x:1000:1000::/home/default-user:/bin/sh\n"), Mode: 0o644},
			{Path: "etc/group", Data: []byte(standin.Group + "default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n"), Mode: 0o644},
		}, func(i *testimage.Image) { i.User = "1000" }),
		testimage.Pause("registry.k8s.io/pause:3.10.2", bins["pause"]),
	}
	for _, n := range []string{"test-image-1", "test-image-2", "test-image-3"} {
		images = append(images, marker(criTools+n+":latest", n))
	}
	images = append(images, marker(criTools+"test-image-latest:latest", "test-image-latest"))
	for _, tag := range []string{"1", "2", "3"} {
		images = append(images, marker(criTools+"test-image-tags:"+tag, "test-image-tags"))
	}
	for _, tag := range []string{"test", "all"} {
		images = append(images, marker(criTools+"test-image-tag:"+tag, "test-image-tag"))
	}
	return standin.Push(env, registry, work, images)
}
