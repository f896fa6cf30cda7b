package cas

import "golang.org/x/sys/unix"

// sysFstatat is fstatat's system call.
const sysFstatat = unix.SYS_FSTATAT
