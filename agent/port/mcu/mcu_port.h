/* SPDX-License-Identifier: Apache-2.0 */
#ifndef OTA_MCU_PORT_H
#define OTA_MCU_PORT_H

#include "fleetota/port.h"

/* The RAM-backed stub port of the Cortex-M build (mcu_port.c). */
void ota_mcu_port(struct ota_port *ret_port);

#endif
