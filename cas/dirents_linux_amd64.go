package cas

import "golang.org/x/sys/unix"

// sysFstatat is fstatat's system call, newfstatat on amd64.
const sysFstatat = unix.SYS_NEWFSTATAT
