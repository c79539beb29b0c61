// The one command API, handed to node components through context (never the canvas).
import { createContext, useContext } from "react";

export const CommandsContext = createContext(null);

/** The command API of the canvas this component is drawn in. */
export function useCommands() {
  const commands = useContext(CommandsContext);
  if (!commands) throw new Error("useCommands() outside a canvas: wrap it in <CommandsContext.Provider>.");
  return commands;
}
