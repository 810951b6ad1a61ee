// SPDX-License-Identifier: GPL-2.0-only
/*
 * fpgastream: what a real board's link does to the stream (datasheet 1.1).
 * A reset, an error recovery or a suspend ends the stream and the board is
 * set up again afterwards on the same mapping; a board that stops
 * answering is found by a health check and given up; an engine that does
 * not stop is kept off the bus. The PCI core's callbacks that call in
 * here (reset, AER, PM) are in fpgastream_pci.c. docs/design.md, "The
 * faults of the link", has the table.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/jiffies.h>
#include <linux/lockdep.h>
#include <linux/pci.h>
#include <linux/workqueue.h>

#include "fpgastream_drv.h"
#include "fpgastream_trace.h"

/**
 * fpgastream_cut_bus_master() - keep an engine that does not stop off the bus
 * @fdev: the board
 *
 * The engine does not stop: switch bus mastering off, after which the
 * function may issue no memory request (PCIe Base Spec, Command register),
 * and read config space back, so that the write has reached the board and
 * the writes it sent before have reached memory (a completion does not
 * pass posted writes). What an engine that ignores its stop still queues
 * is then dropped by the board or, behind an IOMMU, faults.
 */
void fpgastream_cut_bus_master(struct fpgastream_dev *fdev)
{
	u16 cmd;

	pci_clear_master(fdev->pdev);
	pci_read_config_word(fdev->pdev, PCI_COMMAND, &cmd);
}

/**
 * fpgastream_stream_interrupt() - end the stream: the board is about to lose its state
 * @fdev: the board; caller holds fdev->lock
 * @reachable: the board still answers (a reset or a suspend to come), so
 *	the engine is stopped and its last blocks counted; false when error
 *	recovery froze the link: the reset that follows stops the engine,
 *	and the buffer stays mapped until then
 *
 * The stream ends as on a fault the board reports: read() returns the
 * records of the blocks completed before, then -EIO, and poll() EPOLLERR.
 * The mapping stays, and fpgastream_board_restore() programs the LUT again
 * before the next START.
 */
void fpgastream_stream_interrupt(struct fpgastream_dev *fdev, bool reachable)
{
	struct fpgastream_stream *s = &fdev->s;

	lockdep_assert_held(&fdev->lock);
	if (fdev->gone)
		return;
	fdev->lut_lost = true;
	if (!fdev->running)
		return;
	if (reachable) {
		fpgastream_stop_engine(fdev);
	} else {
		spin_lock_irq(&fdev->irq_lock);
		s->signalled = s->completed;
		s->active = false;
		spin_unlock_irq(&fdev->irq_lock);
		fdev->running = false;
	}
	spin_lock_irq(&fdev->irq_lock);
	if (!s->fault)
		s->fault = FPGASTREAM_FAULT_INTERRUPTED;
	spin_unlock_irq(&fdev->irq_lock);
	trace_fpgastream_fault(fdev->minor, 0, FPGASTREAM_FAULT_RESET);
	fpgastream_wake(fdev);
}

/**
 * fpgastream_board_restore() - set a board up again after a reset or a power loss
 * @fdev: the board; caller holds fdev->lock, the stream is not running
 *
 * A reset puts every register and LUT entry back to its power-on value:
 * quiesce what runs, then program the mapping's LUT and ring again, so
 * that START begins a new stream on the same buffer. An engine that does
 * not stop is left wedged, bus mastering off and @lut_lost still set.
 *
 * Return: 0, or -ENODEV if the board does not answer as a FSTR engine.
 */
int fpgastream_board_restore(struct fpgastream_dev *fdev)
{
	struct fpgastream_mapping *map = fdev->map;
	int ret;

	lockdep_assert_held(&fdev->lock);
	if (fpgastream_hw_id(&fdev->hw) != FSTR_ID_MAGIC)
		return -ENODEV;
	ret = fpgastream_quiesce(fdev);
	if (ret == -ENODEV)
		return ret;
	if (ret == -ETIMEDOUT) {
		/* Not programmed: RING_SIZE is written only while not RUNNING. */
		fpgastream_cut_bus_master(fdev);
		fdev->wedged = true;
		dev_err(&fdev->pdev->dev, "engine still running after a reset: bus mastering stays off; power-cycle the board\n");
		return 0;
	}
	if (map) {
		u64 lut_ns = map->lut_ns;

		/* MAP's phase times are MAP's alone (debugfs). */
		fpgastream_map_program(fdev, map);
		map->lut_ns = lut_ns;
	}
	fdev->lut_lost = false;
	fdev->wedged = false;
	pci_set_master(fdev->pdev);
	return 0;
}

/**
 * fpgastream_board_lost() - the board stopped answering: end everything
 * @fdev: the board; caller holds fdev->lock
 *
 * For a board that reads all ones while config space does not answer
 * either (link down, surprise removal, a failed recovery). Such a board
 * writes no memory: the buffer is released at once, readers get -ENODEV,
 * and so does every later call but close(). The driver stays bound: a
 * reset that brings the board back (error recovery, a reset of its port)
 * makes it usable again, to files opened after it.
 */
void fpgastream_board_lost(struct fpgastream_dev *fdev)
{
	lockdep_assert_held(&fdev->lock);
	if (fdev->gone)
		return;
	dev_err(&fdev->pdev->dev, "board not responding (link down?): stream ended, buffer released; reset its slot (echo 1 > /sys/bus/pci/devices/%s/reset) or remove it and rescan\n",
		pci_name(fdev->pdev));
	trace_fpgastream_fault(fdev->minor, U32_MAX, FPGASTREAM_FAULT_ABSENT);
	WRITE_ONCE(fdev->gone, true);
	fdev->lost = true;
	fpgastream_cut_bus_master(fdev);
	fpgastream_teardown(fdev);
	fpgastream_new_epoch(fdev);
	fpgastream_wake(fdev);
}

/**
 * fpgastream_set_resetting() - a reset, a recovery or a suspend begins or ends
 * @fdev: the board; caller holds fdev->lock
 * @on: begins
 */
void fpgastream_set_resetting(struct fpgastream_dev *fdev, bool on)
{
	lockdep_assert_held(&fdev->lock);
	WRITE_ONCE(fdev->resetting, on);
	fdev->reset_since = jiffies;
	fdev->absent_strikes = 0;
}

/**
 * fpgastream_recover() - set the board up again after a reset or a resume
 * @fdev: the board; caller holds fdev->lock
 * @pci_state: restore config space from the probe's snapshot first (the
 *	PCI core did not save it before the reset, or saved a lost board's
 *	all ones)
 *
 * A board that was lost and answers again is usable again; one that does
 * not answer is lost.
 *
 * Return: 0, or -ENODEV if the board was given up.
 */
int fpgastream_recover(struct fpgastream_dev *fdev, bool pci_state)
{
	struct pci_dev *pdev = fdev->pdev;
	bool was_lost = fdev->lost;
	int ret;

	lockdep_assert_held(&fdev->lock);
	if (pci_state || was_lost) {
		pci_load_saved_state(pdev, fdev->pci_state);
		pci_restore_state(pdev);
	}
	/* pci_restore_state() used it up: keep one for the next recovery. */
	pci_save_state(pdev);
	if (was_lost && fpgastream_hw_id(&fdev->hw) == FSTR_ID_MAGIC) {
		WRITE_ONCE(fdev->gone, false);
		fdev->lost = false;
		fdev->lut_lost = true;
	}
	ret = fdev->gone ? -ENODEV : fpgastream_board_restore(fdev);
	if (ret)
		fpgastream_board_lost(fdev);
	else if (was_lost)
		dev_info(&pdev->dev, "board answers again; open it anew to stream\n");
	fpgastream_set_resetting(fdev, false);
	fpgastream_health_start(fdev);
	return ret;
}

/**
 * fpgastream_health_work() - see whether an open board is still itself
 * @work: fpgastream_dev.health_work
 *
 * A board whose link is down reads all ones and raises no interrupt, so
 * nothing else would end a stream that waits for it; neither would a
 * board reset behind the PCI core's back, which raises none either. The
 * ID register is read: all ones is trusted as a lost link only when
 * config space does not answer either, twice in a row; another value
 * while config space answers is a reset, recovered from as one. A reset,
 * a recovery or a suspend may hold the link down on purpose: the check
 * waits for it, but not for ever, since a recovery that fails calls no
 * driver back. On a freezable workqueue: it does not run while the
 * system sleeps.
 */
void fpgastream_health_work(struct work_struct *work)
{
	struct fpgastream_dev *fdev = container_of(to_delayed_work(work),
						   struct fpgastream_dev, health_work);
	bool again;

	mutex_lock(&fdev->lock);
	if (fdev->resetting &&
	    time_after(jiffies, fdev->reset_since +
		       msecs_to_jiffies(FPGASTREAM_RESET_MAX_MS))) {
		dev_warn(&fdev->pdev->dev, "no word from the reset or recovery after %d s: checking the board again\n",
			 FPGASTREAM_RESET_MAX_MS / 1000);
		fpgastream_set_resetting(fdev, false);
	}
	if (fdev->gone || fdev->resetting ||
	    fpgastream_hw_id(&fdev->hw) == FSTR_ID_MAGIC) {
		fdev->absent_strikes = 0;
	} else if (++fdev->absent_strikes < 2) {
		/* Once more before acting: a read may fail in passing. */
	} else if (!pci_device_is_present(fdev->pdev)) {
		fpgastream_board_lost(fdev);
	} else {
		/*
		 * Config space answers, BAR0 does not: the board was reset
		 * without the PCI core (an FPGA reprogrammed, a bus reset
		 * from user space), and its BARs with it. No write of the
		 * PCI core's can race ours here but user space's own.
		 */
		dev_warn(&fdev->pdev->dev, "board was reset without notice (FPGA reprogrammed?): stream ended, setting it up again\n");
		fpgastream_stream_interrupt(fdev, false);
		fpgastream_recover(fdev, true);
	}
	again = !fdev->gone && fdev->open_count;
	mutex_unlock(&fdev->lock);
	if (again)
		queue_delayed_work(system_freezable_wq, &fdev->health_work,
				   msecs_to_jiffies(FPGASTREAM_HEALTH_MS));
}

/**
 * fpgastream_health_start() - check the board while files are open
 * @fdev: the board; caller holds fdev->lock and just opened the first file,
 *	or brought a lost board back
 */
void fpgastream_health_start(struct fpgastream_dev *fdev)
{
	lockdep_assert_held(&fdev->lock);
	if (!fdev->gone && fdev->open_count)
		queue_delayed_work(system_freezable_wq, &fdev->health_work,
				   msecs_to_jiffies(FPGASTREAM_HEALTH_MS));
}
