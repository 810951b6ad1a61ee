/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Kernel API differences across the versions fpgastream builds against.
 * The driver is written against 6.1. Where a later kernel changed an API,
 * the driver either uses a form that did not change (noted here) or gets
 * a shim keyed on a feature test, not on LINUX_VERSION_CODE.
 *
 * class_create() lost its owner argument in 6.4: the driver registers a
 * static struct class with class_register(), the same in both.
 *
 * pin_user_pages() lost its vmas argument in 6.5: the driver pins with
 * pin_user_pages_fast(), the same in both.
 */
#ifndef FPGASTREAM_COMPAT_H
#define FPGASTREAM_COMPAT_H

#include <linux/pci.h>

/* 6.8 renamed PCI_IRQ_LEGACY to PCI_IRQ_INTX (and 6.11 dropped the old name). */
#ifndef PCI_IRQ_INTX
#define PCI_IRQ_INTX	PCI_IRQ_LEGACY
#endif

#endif /* FPGASTREAM_COMPAT_H */
